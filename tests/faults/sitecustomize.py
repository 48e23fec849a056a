"""Fault injection for the interruption tests, at an exact moment of a stage, not after a sleep.

Python imports ``sitecustomize`` at start-up from the first folder of ``sys.path`` that has one;
the tests put this folder first on the stage's PYTHONPATH (``helpers.fault_env``). It acts only
in a stage process (``python -m pipeline.<stage>``), never in ``dvc`` itself, and only when
``INSPECTCNN_FAULT`` is set, as ``<action>@<moment>[:<epoch>]``:

actions
    ``sigint``  Ctrl-C as a terminal sends it: SIGINT to the whole process group (dvc and stage).
    ``hold``    block there for ever, so that the test can SIGKILL a process that cannot finish.
    ``kill``    SIGKILL this process alone (a worker of a multi-worker training that dies).
    ``pause``   wait there until the test deletes the marker file (at most 120 s), then go on: the test
                acts in between (stops a server the stage talks to).

moments (epochs count from 1 and run on across a transfer's two phases)
    ``run_started``      right after the MLflow run has been created, before the first epoch
    ``mid_epoch:N``      inside the second batch of epoch N
    ``checkpoint:N``     while Keras' ModelCheckpoint writes the best model of epoch N
    ``mlflow_write:N``   inside SQLAlchemy's execute of the N-th per-epoch metrics insert: where
                         an unprotected Ctrl-C left the SQLite connection holding its write lock
    ``epoch_end:N``      once history.csv has the row of epoch N (``hold`` here for SIGKILL tests)
    ``publish``          while the stage writes its outputs

When the fault fires, the file named by ``INSPECTCNN_FAULT_MARKER`` (if set) is written: the event
a test waits on.

``INSPECTCNN_BATCH_LOG=<file>`` (any stage, with or without a fault) records the batch each train step of
this process sees: how the multi-worker tests check that each worker gets its share of a global batch.
"""

from __future__ import annotations

import os
import signal
import sys
import time

_SPEC = os.environ.get("INSPECTCNN_FAULT", "")
_IN_STAGE = any(arg.startswith("pipeline.") for arg in sys.orig_argv[1:3])


def _fire() -> None:
    marker = os.environ.get("INSPECTCNN_FAULT_MARKER")
    if marker:
        with open(marker, "w") as handle:
            handle.write(_SPEC)
    action = _SPEC.split("@", 1)[0]
    if action == "sigint":
        os.killpg(os.getpgrp(), signal.SIGINT)
    elif action == "pause":
        deadline = time.monotonic() + 120
        while marker and os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "hold":
        while True:
            time.sleep(3600)
    else:
        raise SystemExit(f"INSPECTCNN_FAULT: unknown action {action!r}")


def _once(condition):
    """Fire the first time ``condition`` holds."""
    fired = []

    def check(*args) -> bool:
        if not fired and condition(*args):
            fired.append(True)
            return True
        return False

    return check


def _install(moment: str, epoch: int) -> None:
    if moment == "run_started":
        import mlflow

        original_start = mlflow.start_run

        def start_run(*args, **kwargs):
            run = original_start(*args, **kwargs)
            _fire()
            return run

        mlflow.start_run = start_run
    elif moment == "mid_epoch":
        import keras

        from inspectcnn import training

        due = _once(lambda e, b: e + 1 >= epoch and b >= 1)
        original_batch = training.NanGuard.on_batch_end

        def on_batch_end(self, batch, logs=None):
            original_batch(self, batch, logs)
            if due(getattr(self, "_epoch", 0), batch):
                _fire()

        training.NanGuard.on_batch_end = on_batch_end
        assert keras  # imported for its side effect of loading the backend first
    elif moment == "checkpoint":
        import keras

        due = _once(lambda e: e + 1 >= epoch)
        original_save = keras.callbacks.ModelCheckpoint._save_model

        def save_model(self, epoch, batch, logs):
            if due(epoch):
                _fire()  # the handler runs inside the save below
            return original_save(self, epoch=epoch, batch=batch, logs=logs)

        keras.callbacks.ModelCheckpoint._save_model = save_model
    elif moment == "mlflow_write":
        from sqlalchemy.engine import default

        inserts = []
        original_many = default.DefaultDialect.do_executemany

        def do_executemany(self, cursor, statement, parameters, context=None):
            result = original_many(self, cursor, statement, parameters, context)
            if statement.startswith("INSERT INTO metrics"):
                inserts.append(statement)
                if len(inserts) == epoch:
                    _fire()  # the handler runs here, inside SQLAlchemy's execute
            return result

        default.DefaultDialect.do_executemany = do_executemany
    elif moment == "epoch_end":
        import keras

        due = _once(lambda e: e + 1 >= epoch)
        original_end = keras.callbacks.CSVLogger.on_epoch_end

        def on_epoch_end(self, epoch_index, logs=None):
            original_end(self, epoch_index, logs)
            if due(epoch_index):
                _fire()

        keras.callbacks.CSVLogger.on_epoch_end = on_epoch_end
    elif moment == "publish":
        from inspectcnn import artifacts as dvc_outputs

        original_write = dvc_outputs.write_table

        def write_table(*args, **kwargs):
            _fire()  # the handler runs inside the stage's publishing
            return original_write(*args, **kwargs)

        dvc_outputs.write_table = write_table
    else:
        raise SystemExit(f"INSPECTCNN_FAULT: unknown moment {moment!r}")


def _record_batches(path: str) -> None:
    """``INSPECTCNN_BATCH_LOG=<file>``: append the batch size one replica's train step sees, a line per step
    (TensorFlow, at run time) or per compiled step (JAX: the shard of the global batch on this process's device)."""
    import keras

    original = keras.Model.train_step

    def write(size) -> None:
        with open(path, "a") as handle:
            handle.write(f"{int(size)}\n")

    def train_step(self, *args):
        images = args[-1][0]
        if keras.backend.backend() == "jax":
            import jax

            jax.debug.inspect_array_sharding(images, callback=lambda s: write(s.shard_shape(images.shape)[0]))
        else:
            import tensorflow as tf

            tf.py_function(write, [tf.shape(images)[0]], [])
        return original(self, *args)

    keras.Model.train_step = train_step


def _record_reads(path: str) -> None:
    """``INSPECTCNN_READ_LOG=<file>``: append ``<dvc stage>\t<path>`` for every file this stage process opens
    for reading under data/, models/ or reports/ (Python's ``open`` audit event: open(), io, NumPy, zipfile),
    so that a test can compare what a stage reads with what its dvc.yaml entry declares."""
    stage = os.environ.get("DVC_STAGE", "?")
    root = os.getcwd()
    watched = tuple(os.path.join(root, folder) + os.sep for folder in ("data", "models", "reports"))
    seen = set()

    def hook(event, args):
        if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        mode, flags = args[1], args[2]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and flags & (os.O_WRONLY | os.O_RDWR))
        target = os.path.abspath(os.fsdecode(args[0]))
        if writing or not target.startswith(watched) or target in seen:
            return
        seen.add(target)
        with _open_log(path, "a") as handle:
            handle.write(f"{stage}\t{os.path.relpath(target, root)}\n")

    sys.addaudithook(hook)


_open_log = open  # the log's own writes are never recorded: it lies outside the watched folders

if os.environ.get("INSPECTCNN_READ_LOG") and _IN_STAGE:
    _record_reads(os.environ["INSPECTCNN_READ_LOG"])

if os.environ.get("INSPECTCNN_BATCH_LOG") and _IN_STAGE:
    _record_batches(os.environ["INSPECTCNN_BATCH_LOG"])

if _SPEC and _IN_STAGE:
    _moment, _, _epoch = _SPEC.split("@", 1)[1].partition(":")
    _install(_moment, int(_epoch or 0))
