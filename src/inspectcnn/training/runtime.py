"""Runtime set-up, the only place that touches devices, precision, the distribution strategy and seeds."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from inspectcnn.errors import UserError


class TrainingError(UserError, RuntimeError):
    """Training cannot start or went wrong in a way the user must act on (bad params, divergence)."""


def configure_precision(mode: str) -> str:
    """Set Keras' global dtype policy; "auto" is mixed precision on a GPU, float32 on a CPU."""
    if mode == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            mode = "off"
        else:
            major = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))[0]
            mode = "bfloat16" if major >= 8 else "float16"
    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[mode]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def make_strategy(kind: str) -> tf.distribute.Strategy:
    """tf.distribute does all multi-device work: MirroredStrategy on one machine, MultiWorkerMirrored
    (reads TF_CONFIG) across machines; "auto" mirrors when there is more than one GPU."""
    if kind == "auto":
        kind = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise TrainingError("strategy: multi_worker needs the TF_CONFIG environment variable (see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    if not task:
        return True
    has_chief = "chief" in config.get("cluster", {})
    return task.get("type") == "chief" or (not has_chief and task.get("type") == "worker" and task.get("index") == 0)


@dataclass(frozen=True)
class Runtime:
    policy: str  # the Keras dtype policy in force
    strategy: tf.distribute.Strategy

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def setup(*, seed: int, deterministic: bool, mixed_precision: str, strategy: str) -> Runtime:
    """Seeds, op determinism, dtype policy and strategy for one training run, in that order."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = configure_precision(mixed_precision)
    return Runtime(policy, make_strategy(strategy))
