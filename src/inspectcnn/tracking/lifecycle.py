"""The run lifecycle of every stage: the store, the experiment, the standard run and its tags.

Tracking URI: ``MLFLOW_TRACKING_URI`` if set, else a SQLite store ``mlflow.db`` at the project
root, as an absolute path, so runs that DVC executes in temporary copies (``dvc exp run --queue``
works in ``.dvc/tmp/exps/...``) log to the same store as the workspace.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from inspectcnn import interrupts
from inspectcnn.tracking.runs import Run, TrackingUnavailableError, check_reachable, redact, redacted

log = logging.getLogger(__name__)


def project_root(start: Path | None = None) -> Path:
    """The folder holding dvc.yaml; a DVC experiment's temporary copy maps back to its workspace."""
    here = (start or Path.cwd()).resolve()
    text = here.as_posix()
    marker = "/.dvc/tmp/exps/"
    if marker in text:
        return Path(text.split(marker, 1)[0])
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return here


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"augment": {"flip": "x"}} -> {"augment.flip": "x"}: MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def params_hash(mapping: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(mapping, sort_keys=True, default=str).encode()).hexdigest()[:12]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_tags() -> dict[str, str]:
    from inspectcnn.devices import describe, versions

    found = versions()
    return {
        "git_commit": git_commit(),
        "device": describe(),
        "keras_backend": found["backend"],
        f"{found['backend']}_version": found["backend_version"],
        "keras_version": found["keras"],
        "python_version": platform.python_version(),
    }



@contextlib.contextmanager
def start_run(run_name: str, *, experiment: str, params: Mapping[str, Any], tags: Mapping[str, str],
              required: bool = True, dataset: tuple[Path, str] | None = None) -> Iterator[Run]:
    """An MLflow run that ends FINISHED on success, FAILED on an error and KILLED on Ctrl-C.

    The store is contacted before any training starts: unreachable and ``required`` raises
    TrackingUnavailableError; unreachable and optional warns and yields an inactive Run.
    ``dataset`` (prepared folder, context) logs the prepared data the run saw as its MLflow input.
    A Ctrl-C never lands inside an MLflow call (see :mod:`inspectcnn.interrupts`): it is raised
    when the call has returned, and the run is then ended KILLED. A process that dies without
    ending its run (SIGKILL) leaves it RUNNING; the next start of the same stage on the same machine marks it
    KILLED (:func:`mark_stale_runs`).
    """
    uri = tracking_uri()
    _bound_http_retries()
    active, run = None, None
    status = "FAILED"
    try:
        try:
            with interrupts.deferred():
                import mlflow

                killed = _open_experiment(uri, experiment, run_name)
                active = mlflow.start_run(run_name=run_name, tags={PROCESS_TAG: process_tag()})
        except Exception as error:  # noqa: BLE001 - any failure to reach the store means the same here
            if active is not None:
                raise  # the run exists: an error after its start is the run's failure, ended below
            yield unreachable(uri, error, required)
            return

        _describe_run(run_name, tags, params, dataset, resumes=killed)
        run = Run(active, required=required, uri=uri)
        yield run
        status = "FINISHED"
        if run.not_logged:
            log.warning("MLflow run %s (%s) is incomplete: not logged: %s", active.info.run_id, run_name,
                        ", ".join(run.not_logged))
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if run is not None and run.lost:
            log.warning("MLflow run %s stays RUNNING on the store it lost; the next start of %s marks it KILLED",
                        active.info.run_id, run_name)
        elif active is not None:
            _end_run(active.info.run_id, status)


def unreachable(uri: str, error: Exception, required: bool) -> Run:
    """A store that could not be reached: TrackingUnavailableError when tracking is required, else a warning
    and an inactive :class:`Run` (the metrics still go to the DVC metrics files)."""
    if required:
        raise TrackingUnavailableError(
            f"cannot reach the MLflow tracking store {redact(uri)}: {redacted(error, uri)}. Fix "
            "MLFLOW_TRACKING_URI, or set mlflow.required: false in params.yaml to train without it "
            "(metrics still go to the DVC metrics files)"
        ) from None
    log.warning("MLflow store %s unreachable (%s): running WITHOUT MLflow tracking; the metrics are "
                "only in the DVC metrics files", redact(uri), redacted(error, uri))
    return Run(None)


def _bound_http_retries() -> None:
    """MLflow retries an unanswered request 7 times with doubling pauses, about 4 minutes a call: a server
    that went away would hold a stage for a quarter of an hour. 3 retries 1, 2 and 4 s apart, unless set."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def _describe_run(run_name: str, tags: Mapping[str, str], params: Mapping[str, Any],
                  dataset: tuple[Path, str] | None, resumes: list[str]) -> None:
    """The new run's tags, flattened params and dataset input."""
    import mlflow

    with interrupts.deferred():
        mlflow.set_tags({**tags, "mlflow.runName": run_name})
        if resumes:  # an earlier process of this stage died mid-run: this run resumes its work
            mlflow.set_tags({"resumes_runs": ",".join(resumes)})
        flat = {k: ("null" if v is None else v) for k, v in flatten(params).items()}
        mlflow.log_params(flat)
        if dataset is not None:
            log_dataset(*dataset)


def _open_experiment(uri: str, experiment: str, run_name: str) -> list[str]:
    """Reach the store, select (or create) ``experiment``, mark the runs a dead process of ``run_name`` left
    RUNNING as KILLED; their ids.

    Two stages that start together on a new experiment (``dvc exp run -j 2``, two checkouts on one server)
    both try to create it and its tags; the loser's error ("already exists", "UNIQUE constraint failed",
    "duplicate key value", "database is locked") means the other got there first, so it tries again after a
    pause (2, 4, 8 s); on SQLite any error counts as such a race. A new SQLite store's tables are created under
    :func:`store_lock`: MLflow's schema migration, run by two processes at once, leaves a half-migrated file
    that no retry can open ("table _alembic_tmp_tags already exists")."""
    check_reachable(uri)  # before the lock: no lock file is made where no store can be
    with store_lock(uri):
        return retry_lost_race(lambda: _select_experiment(uri, experiment, run_name), (2, 4, 8),
                               f"MLflow store {redact(uri)} busy", any_error=uri.startswith("sqlite:"))


@contextlib.contextmanager
def store_lock(uri: str, timeout_s: float = 300.0) -> Iterator[None]:
    """For a SQLite store, an exclusive lock on ``<file>.lock`` beside it (filelock) while this process opens
    the store, creates its tables and selects the experiment: one process at a time on this machine. Other
    stores (a server) serialise their own writes: nothing is held."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock, Timeout

    path = f"{uri.removeprefix('sqlite:///')}.lock"
    try:
        lock = FileLock(path, timeout=timeout_s)
        lock.acquire()
    except Timeout:
        raise TrackingUnavailableError(f"MLflow store {redact(uri)}: another process has held {path} for "
                                       f"{timeout_s:.0f} s; if none is running, delete {path}") from None
    try:
        yield
    finally:
        lock.release()


def retry_lost_race(call, pauses: tuple[float, ...], busy: str, any_error: bool = False):
    """``call()``, tried again after each of ``pauses`` (seconds) while it fails with a lost race
    (:func:`lost_race`; any error with ``any_error``), logging ``busy``; the last failure is raised. A store that
    cannot be reached at all (TrackingUnavailableError) is raised at once."""
    for pause in pauses:
        try:
            return call()
        except TrackingUnavailableError:
            raise
        except Exception as error:  # noqa: BLE001 - a lost race: try again; anything else: raised
            if not (any_error or lost_race(error)):
                raise
            log.info("%s (%s); trying again", busy, type(error).__name__)
            time.sleep(pause)
    return call()  # the last try: its failure is raised


LOST_RACE = ("already exists", "UNIQUE constraint failed", "duplicate key value", "UniqueViolation",
             "database is locked")


def lost_race(error: Exception) -> bool:
    """Whether a store error says another writer inserted the same row first (or holds SQLite's lock)."""
    return any(mark in str(error) for mark in LOST_RACE)


def _select_experiment(uri: str, experiment: str, run_name: str) -> list[str]:
    import mlflow

    mlflow.set_tracking_uri(uri)
    found = mlflow.set_experiment(experiment)
    # when another process created the experiment in the same instant, set_experiment returns it without making
    # it the active one (its lost-race path), and the run would land in "Default": select it by id as well
    mlflow.set_experiment(experiment_id=found.experiment_id)
    if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # the UI opens on its training runs
        mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return mark_stale_runs(experiment, run_name)


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # what MLflow's UI sets for model training: it opens on the runs


def prepared_dataset(prepared: Path):
    """The prepared data as an MLflow dataset: its manifest (ids, sources, labels, groups, splits; no pixels),
    named after the source, with the manifest's path as an explicit local source (not a string MLflow has to
    guess the kind of), the manifest's SHA-256 as digest, and its columns' types declared from the manifest's
    own dtypes (integer columns stay integers; no schema inference, which warns on every integer column)."""
    import hashlib
    import io

    import pandas as pd
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, DataType, Schema

    from inspectcnn.data import store

    manifest_path = store.manifest_path(prepared).resolve()
    meta = store.read_meta(prepared)
    raw = manifest_path.read_bytes()
    manifest = pd.read_csv(io.BytesIO(raw), dtype={"id": str})
    kinds = {"i": DataType.long, "u": DataType.long, "f": DataType.double, "b": DataType.boolean}
    schema = Schema([ColSpec(kinds.get(dtype.kind, DataType.string), str(name))
                     for name, dtype in manifest.dtypes.items()])
    local = next(cls for cls in get_registered_sources() if cls.__name__ == "LocalArtifactDatasetSource")
    return MetaDataset(local(str(manifest_path)),
                       name=f"{meta.get('source', 'data')}-prepared-{meta.get('image_size')}px",
                       digest=hashlib.sha256(raw).hexdigest()[:16], schema=schema)


def log_dataset(prepared: Path, context: str) -> None:
    """The run's input in MLflow's Dataset column and lineage: the prepared data, ``context`` the split(s)
    used (training: train + val; evaluation: val + test)."""
    import mlflow

    from inspectcnn.data import store

    if not store.manifest_path(prepared).is_file():
        return
    dataset = prepared_dataset(prepared)
    # two stages logging the same data at once (two checkouts on one server): the loser's insert of the data set
    # row fails on its key ("duplicate key value"); the row is there now, so the second call only links it
    retry_lost_race(lambda: mlflow.log_input(dataset, context=context), (1, 2, 4),
                    "MLflow store busy logging the data set")


def stage_run(stage: str, kind: str, params, run_params: Mapping[str, Any], *, run_name: str | None = None,
              tags: Mapping[str, str] | None = None, dataset: tuple[Path, str] | None = None):
    """The MLflow run of one DVC stage (:func:`start_run`), with the standard tags every stage's run carries:
    the environment, ``dvc_stage``, ``kind`` and ``params_hash`` (of ``run_params``), plus ``tags``."""
    from inspectcnn.cluster import worker

    here = worker()
    if not here.chief:  # a multi-worker training has one run, the chief's; this worker never touches the store
        log.info("%s of a multi-worker training: worker 0 logs to MLflow, not this one", here.label)
        return contextlib.nullcontext(Run(None))
    standard = {**environment_tags(), "dvc_stage": stage, "kind": kind, "params_hash": params_hash(run_params)}
    return start_run(run_name or stage, experiment=params.mlflow.experiment, params=run_params,
                     tags={**standard, **(tags or {})}, required=params.mlflow.required, dataset=dataset)


def _end_run(run_id: str, status: str) -> None:
    """End the active run with ``status``; never leave it RUNNING because of a stuck connection.

    A connection torn by an exception can stay open in a reference cycle until the garbage
    collector runs, holding SQLite's write lock; collect it and end the run by id if the first
    attempt fails. If even that fails, the next start of the stage marks the run KILLED.
    """
    import mlflow

    with interrupts.deferred():
        try:
            mlflow.end_run(status=status)
            return
        except Exception as error:  # noqa: BLE001 - retried below, then reported
            first = error
        gc.collect()
        try:
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri()).set_terminated(run_id, status=status)
        except Exception as error:  # noqa: BLE001
            log.warning("could not mark MLflow run %s %s (%s; then %s): the next start of this stage will "
                        "mark it KILLED", run_id, status, first, error)


PROCESS_TAG = "inspectcnn.process"  # the machine, pid and start time of the process a run belongs to


def process_tag() -> str:
    """``<host>|<pid>|<start time>`` of this process: with the start time a reused pid is not taken for it."""
    import socket

    import psutil

    me = psutil.Process()
    return f"{socket.gethostname()}|{me.pid}|{me.create_time():.2f}"


def process_gone(tag: str | None) -> bool:
    """Whether the process of a run's ``PROCESS_TAG`` is known to have ended: a process of this machine that no
    longer runs (or whose pid now belongs to a later process). A run without the tag counts as gone; one of
    another machine does not (nothing here can tell; that machine's next start of the stage marks it)."""
    import socket

    import psutil

    if not tag:
        return True
    host, _, rest = tag.partition("|")
    if host != socket.gethostname():
        return False
    pid, _, started = rest.partition("|")  # a malformed tag fails int() or float() below: gone
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 0.05
    except (psutil.NoSuchProcess, ValueError):
        return True
    except psutil.Error:  # exists, but not ours to inspect: alive
        return False


def mark_stale_runs(experiment: str, run_name: str) -> list[str]:
    """Runs of ``run_name`` left RUNNING by a process that has ended (killed): mark them KILLED, return their
    ids. A run whose process still runs (the same stage in another checkout or a parallel DVC experiment, on
    the same store) is left alone."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    running = client.search_runs(
        [found.experiment_id], filter_string=f"attributes.run_name = '{run_name}' and attributes.status = 'RUNNING'"
    )
    stale = [r for r in running if process_gone(r.data.tags.get(PROCESS_TAG))]
    for r in stale:
        client.set_terminated(r.info.run_id, status="KILLED")
    return [r.info.run_id for r in stale]
