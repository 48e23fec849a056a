"""Which Keras 3 backend runs the stages: params.yaml's ``backend:`` (tensorflow, the default | jax | torch).

Keras reads its backend once, when it is first imported, from ``KERAS_BACKEND``. Every stage applies
params.yaml's choice before anything imports Keras (:func:`apply_from_params`, called when the package
``inspectcnn.stages`` is imported, i.e. before the stage module's own imports run). Everything else
in the project is written against Keras alone; the few places a backend shows through each live in
one small module with a branch per backend:

- :mod:`inspectcnn.devices`: the accelerators, their names and compute capability, versions;
- :mod:`inspectcnn.training.runtime`: precision, seeds and multi-device set-up (``tf.distribute`` for
  TensorFlow, ``keras.distribution.DataParallel`` for JAX, one device for PyTorch);
- :mod:`inspectcnn.gradcam`: the gradient of the defect logit (GradientTape | jax.grad | autograd).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT = "tensorflow"

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """Keras was already imported under another backend than the one asked for."""


def current() -> str:
    """The backend Keras runs (imports Keras)."""
    import keras

    return keras.backend.backend()


def apply(name: str) -> str:
    """Make ``name`` the Keras backend of this process; must run before Keras is imported."""
    if name not in BACKENDS:
        raise ValueError(f"backend: {name!r} is not one of {', '.join(BACKENDS)}")
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise BackendError(f"backend: {name} was asked for, but Keras was already imported under "
                           f"{keras.backend.backend()}; set it before anything imports Keras")
    previous = os.environ.get("KERAS_BACKEND")
    if previous and previous != name:
        log.info("params.yaml backend: %s overrides KERAS_BACKEND=%s", name, previous)
    os.environ["KERAS_BACKEND"] = name
    if name == "jax":
        # JAX grabs 75 % of a GPU's memory up front by default; TensorFlow's habit is to grow on demand.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return name


def from_params(path: str | Path = "params.yaml") -> str:
    """The ``backend:`` of a params file; the default when the file or the key is missing. Reads YAML only:
    validating the value is :mod:`inspectcnn.config`'s work (a bad value fails there with the others)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return DEFAULT
    value = data.get("backend", DEFAULT) if isinstance(data, dict) else DEFAULT
    return value if value in BACKENDS else DEFAULT


def params_path(argv: list[str]) -> str:
    """The ``--params`` value of a stage's command line (default params.yaml)."""
    for index, arg in enumerate(argv):
        if arg == "--params" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--params="):
            return arg.split("=", 1)[1]
    return "params.yaml"


def apply_from_params(argv: list[str] | None = None) -> str:
    """Apply the backend of the params file named on the command line, unless Keras is already imported
    (a library user or a test that imported a stage module in-process keeps the backend it has)."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return apply(from_params(params_path(sys.argv if argv is None else argv)))
