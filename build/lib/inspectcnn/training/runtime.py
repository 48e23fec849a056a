"""Runtime set-up, the only place that touches devices, precision, the distribution strategy and seeds, with a
branch per Keras backend (TensorFlow, JAX, PyTorch)."""

from __future__ import annotations

import contextlib
import functools
import json
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
        engine = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        return Strategy(1)
    return Strategy(int(engine.num_replicas_in_sync), engine)


def _jax_strategy(kind: str) -> Strategy:
    if kind == "default":
        keras.distribution.set_distribution(None)
        return Strategy(1)
    if kind == "multi_worker":
        # Reads KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and _PROCESS_ID (see README)
        if "KERAS_DISTRIBUTION_JOB_ADDRESSES" not in os.environ:
            raise TrainingError("strategy: multi_worker under backend: jax needs KERAS_DISTRIBUTION_JOB_ADDRESSES, "
                                "KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID (see README)")
        keras.distribution.initialize()
    engine = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    keras.distribution.set_distribution(engine)
    return Strategy(len(keras.distribution.list_devices()), engine)


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


def is_chief() -> bool:
    if keras.backend.backend() == "jax" and "KERAS_DISTRIBUTION_PROCESS_ID" in os.environ:
        return int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"]) == 0
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    if not task:
        return True
    has_chief = "chief" in config.get("cluster", {})
    return task.get("type") == "chief" or (not has_chief and task.get("type") == "worker" and task.get("index") == 0)


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
