"""Runtime set-up, the only place that touches devices, precision, the distribution strategy and seeds, with a
branch per Keras backend (TensorFlow, JAX, PyTorch)."""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Any

import keras

from inspectcnn import devices
from inspectcnn.errors import UserError


class TrainingError(UserError, RuntimeError):
    """Training cannot start or went wrong in a way the user must act on (bad params, divergence)."""


def configure_precision(mode: str) -> str:
    """Set Keras' global dtype policy; "auto" is mixed precision on a GPU (bfloat16 from compute capability
    8, Ampere, on; float16 before), float32 on a CPU."""
    if mode == "auto":
        gpus = devices.gpus()
        if not gpus:
            mode = "off"
        else:
            mode = "bfloat16" if gpus[0].compute_capability >= 8 else "float16"
    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[mode]
    keras.mixed_precision.set_global_policy(policy)
    return policy


@dataclass(frozen=True)
class Strategy:
    """What a training run needs of its multi-device set-up, whatever the backend: a scope to build and
    compile the model in, and how many replicas share the global batch."""

    replicas: int
    engine: Any = None  # the tf.distribute.Strategy or keras.distribution.DataParallel doing the work
    shard: tuple[int, int] | None = None  # (process, processes) when each process feeds its part of a batch

    def scope(self):
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()


@functools.lru_cache(maxsize=None)
def _tensorflow_strategy(kind: str) -> Strategy:
    """One per kind and process: a second MirroredStrategy over the same devices collides with the first
    one's collective ops (TensorFlow aborts the step with a shape mismatch)."""
    import tensorflow as tf

    if kind == "mirrored":
        # Every GPU; on a machine without one, every logical CPU device (how the 2-device test runs).
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        engine = (tf.distribute.MirroredStrategy() if devices.gpus() or len(cpus) < 2
                  else tf.distribute.MirroredStrategy(cpus))
    elif kind == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise TrainingError("strategy: multi_worker needs the TF_CONFIG environment variable (see README)")
        engine = _multi_worker_strategy()
    else:
        return Strategy(1)
    return Strategy(int(engine.num_replicas_in_sync), engine)


def _multi_worker_strategy():
    """``tf.distribute.MultiWorkerMirroredStrategy`` (reads TF_CONFIG), with ``reduce`` taking what Keras gives it.

    Keras 3.15's ``fit`` calls ``strategy.reduce`` in two ways only MirroredStrategy accepts, and fails on two
    workers without this: on the whole first (x, y) batch, a tuple, to build the model (``_maybe_symbolic_build``:
    "Attempt to convert a value (PerReplica...)"), and with ``axis=0`` on every step's scalar logs
    (``reduce_per_replica``: "Invalid reduction dimension 0 for input with 0 dimensions"). Here a tuple is
    reduced one leaf at a time and a scalar across replicas (axis None), each by the strategy itself: the
    results MirroredStrategy gives. Nothing else is changed.
    """
    import tensorflow as tf

    def rank(value) -> int | None:
        first = value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
        return getattr(getattr(first, "shape", None), "rank", None)

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super()
            if tf.nest.is_nested(value):
                return tf.nest.map_structure(lambda leaf: self.reduce(reduce_op, leaf, axis), value)
            return parent.reduce(reduce_op, value, None if rank(value) == 0 else axis)

    return MultiWorkerMirroredStrategy()


def _jax_strategy(kind: str) -> Strategy:
    if kind == "default":
        keras.distribution.set_distribution(None)
        return Strategy(1)
    if kind == "multi_worker":  # each process feeds its own rows of every global batch (SplitBatches shard=)
        join_cluster(kind)
        import jax

        engine = keras.distribution.DataParallel(devices=keras.distribution.list_devices(), auto_shard_dataset=False)
        keras.distribution.set_distribution(engine)
        return Strategy(len(keras.distribution.list_devices()), engine, (jax.process_index(), jax.process_count()))
    engine = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    keras.distribution.set_distribution(engine)
    return Strategy(len(keras.distribution.list_devices()), engine)


def join_cluster(kind: str) -> None:
    """Join the multi-worker training (``strategy: multi_worker``) before anything touches a device.

    JAX: ``keras.distribution.initialize`` (``jax.distributed``, reading KERAS_DISTRIBUTION_JOB_ADDRESSES,
    _NUM_PROCESSES and _PROCESS_ID) must run before the first JAX call, and the MLflow run's device tags are
    one, so the stages call this first. TensorFlow needs nothing here: MultiWorkerMirroredStrategy reads
    TF_CONFIG when the strategy is made.
    """
    if kind != "multi_worker" or keras.backend.backend() != "jax":
        return
    missing = [name for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                                 "KERAS_DISTRIBUTION_PROCESS_ID") if name not in os.environ]
    if missing:
        raise TrainingError(f"strategy: multi_worker under backend: jax needs {', '.join(missing)} (see README "
                            "\"Several machines\")")
    import jax

    if not jax.distributed.is_initialized():
        keras.distribution.initialize()


def leave_cluster() -> None:
    """After a training: what follows (the chief loading the best model to log it) is this process's own work.
    Under JAX a model loaded while the DataParallel distribution is in force spreads its variables over every
    process's devices and waits for the others, which have finished: the distribution is dropped."""
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)


def make_strategy(kind: str) -> Strategy:
    """Multi-device training through the engines, never a home-made one: ``tf.distribute`` under TensorFlow
    (MirroredStrategy on one machine, MultiWorkerMirrored across machines, reading TF_CONFIG),
    ``keras.distribution.DataParallel`` under JAX. "auto" replicates when there is more than one GPU."""
    backend = keras.backend.backend()
    if kind == "auto":  # PyTorch has no Keras data parallelism: one device
        kind = "mirrored" if backend != "torch" and len(devices.gpus()) > 1 else "default"
    if backend == "tensorflow":
        return _tensorflow_strategy(kind)
    if backend == "jax":
        return _jax_strategy(kind)
    if kind in ("mirrored", "multi_worker"):
        raise TrainingError(f"strategy: {kind} is not available under backend: {backend} (Keras distributes "
                            "TensorFlow through tf.distribute and JAX through keras.distribution); use one of those "
                            "or strategy: default")
    return Strategy(1)


def enable_determinism() -> None:
    """Bit-identical reruns where the backend offers it (slower)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
    elif backend == "jax":  # XLA on a CPU is deterministic; its GPU reductions need the flag
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()


# What the engines raise on the workers left when one worker of a multi-worker training dies. TensorFlow: its
# coordination service stops hearing the worker's heartbeats (UnavailableError "... tasks are unhealthy", about
# 20 s later). JAX on CPUs: the next collective fails at once (a ValueError "Gloo AllGather failed ...
# Connection reset by peer"); JAX's distributed service then ends the process when its heartbeat timeout
# (100 s) confirms the loss.
_PEER_ERRORS = ("UnavailableError", "CancelledError", "AbortedError", "DeadlineExceededError")
_PEER_MESSAGES = ("Gloo", "heartbeat", "unhealthy", "Connection reset by peer", "Collective ops is aborted")


@contextlib.contextmanager
def peers_alive(name: str):
    """Around a multi-worker fit: a worker that died makes the others fail with one clear TrainingError (no
    model published, the MLflow run FAILED) instead of a collective-op traceback. Alone: does nothing."""
    from inspectcnn.cluster import worker

    here = worker()
    try:
        yield
    except Exception as error:
        text = str(error)
        if here.count < 2 or not (type(error).__name__ in _PEER_ERRORS or any(m in text for m in _PEER_MESSAGES)):
            raise
        first = (text.strip().splitlines() or [""])[0][:300]
        raise TrainingError(
            f"{name}: {here.label} of a multi-worker training lost its peers ({type(error).__name__}: {first}); "
            "the training stopped and no model was saved. Start every worker again (each resumes from its last "
            "completed epoch)") from None


@dataclass(frozen=True)
class Runtime:
    policy: str  # the Keras dtype policy in force
    strategy: Strategy

    @property
    def replicas(self) -> int:
        return self.strategy.replicas


def setup(*, seed: int, deterministic: bool, mixed_precision: str, strategy: str) -> Runtime:
    """Seeds, determinism, dtype policy and strategy for one training run, in that order."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        enable_determinism()
    policy = configure_precision(mixed_precision)
    return Runtime(policy, make_strategy(strategy))
