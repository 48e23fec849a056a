"""The hardware this process trains on, as the Keras backend in force sees it (MLflow tags, the report,
precision and strategy choices). Reads, configures nothing: device set-up lives in
:mod:`inspectcnn.training.runtime`. One branch per backend (see :mod:`inspectcnn.backend`)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from inspectcnn.backend import BACKENDS, current


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: int  # major version; 0 when the backend does not say


def gpus() -> list[Gpu]:
    """The GPUs the backend can use."""
    backend = current()
    if backend == "tensorflow":
        import tensorflow as tf

        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            found.append(Gpu(details.get("device_name", gpu.name), int(details.get("compute_capability", (0, 0))[0])))
        return found
    if backend == "jax":
        import jax

        found = []
        for device in jax.devices():
            if device.platform == "gpu":
                capability = getattr(device, "compute_capability", "0")
                found.append(Gpu(device.device_kind, int(str(capability).split(".")[0] or 0)))
        return found
    if backend == "torch":
        import torch

        return [Gpu(torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i)[0])
                for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return []


def describe() -> str:
    """GPU names (comma-separated), or the CPU and its core count."""
    names = ", ".join(gpu.name for gpu in gpus())
    return names or f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def versions() -> dict[str, str]:
    """Keras, its backend and the backend's version, for MLflow tags and the report."""
    import keras

    backend = current()
    version = __import__(backend).__version__ if backend in BACKENDS else "unknown"  # packages named alike
    return {"keras": keras.__version__, "backend": backend, "backend_version": version}


def environment() -> dict:
    """What the report and the model card state of the machine and library versions behind the numbers."""
    import sklearn

    found = versions()
    return {"python": platform.python_version(), "keras": found["keras"],
            found["backend"]: found["backend_version"], "keras_backend": found["backend"],
            "scikit-learn": sklearn.__version__, "platform": platform.platform(), "device": describe()}
