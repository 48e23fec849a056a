"""The hardware this process trains on, in words (MLflow tags, the report). Reads, configures nothing:
device set-up lives in :mod:`inspectcnn.training.runtime`."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    """GPU names (comma-separated), or the CPU and its core count."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    return names or f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
