"""Which worker of a multi-worker training this process is, read from the engines' own environment variables
(``TF_CONFIG`` for ``tf.distribute.MultiWorkerMirroredStrategy``, ``KERAS_DISTRIBUTION_*`` for
``keras.distribution.initialize`` under JAX). Reads, starts nothing; imports neither Keras nor MLflow, so
tracking and checkpointing can ask before a backend is loaded.

Worker 0 (TensorFlow: the ``chief`` task, else worker 0) is the chief: it alone logs to MLflow and writes the
stage outputs. The other workers train in their own work folder and publish nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Worker:
    index: int  # 0 for the chief
    count: int  # 1 outside a multi-worker training

    @property
    def chief(self) -> bool:
        return self.index == 0

    @property
    def label(self) -> str:
        return f"worker {self.index} of {self.count}"


def _backend() -> str:
    import sys

    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None else os.environ.get("KERAS_BACKEND", "tensorflow")


def worker() -> Worker:
    """This process's place in the training cluster; ``Worker(0, 1)`` when there is none."""
    if _backend() == "jax" and "KERAS_DISTRIBUTION_PROCESS_ID" in os.environ:
        count = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
        return Worker(int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"]), count)
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task, cluster = config.get("task") or {}, config.get("cluster") or {}
    if not task:
        return Worker(0, 1)
    order = [*(("chief", i) for i in range(len(cluster.get("chief", [])))),
             *(("worker", i) for i in range(len(cluster.get("worker", []))))]
    here = (task.get("type"), int(task.get("index", 0)))
    index = order.index(here) if here in order else len(order)  # an evaluator or ps task: never the chief
    return Worker(index, max(len(order), 1))
