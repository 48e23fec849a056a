"""Which Keras 3 backend runs the stages: params.yaml's ``backend:`` (tensorflow, the default | jax | torch).

Keras reads its backend once, when it is first imported, from ``KERAS_BACKEND``. Every stage applies
params.yaml's choice before anything imports Keras (:func:`apply_from_params`, called when the package
``pipeline`` is imported, i.e. before the stage module's own imports run). Everything else
in the project is written against Keras alone; the few places a backend shows through each live in
one small module with a branch per backend:

- :mod:`inspectcnn.devices`: the accelerators, their names and compute capability, versions;
- :mod:`inspectcnn.training.runtime`: precision, seeds and multi-device set-up (``tf.distribute`` for
  TensorFlow, ``keras.distribution.DataParallel`` for JAX, one device for PyTorch);
- :mod:`inspectcnn.gradcam`: the gradient of the defect logit (GradientTape | jax.grad | autograd).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
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
    from inspectcnn.config import read_raw
    from inspectcnn.errors import UserError

    try:
        value = read_raw(path).get("backend", DEFAULT)
    except UserError:  # no file or no YAML: the stage's own load_params reports it
        return DEFAULT
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
    name = apply(from_params(params_path(sys.argv if argv is None else argv)))
    if name == "tensorflow":
        quiet_tensorflow_start()
    return name


# TensorFlow's native start-up lines on a machine without a GPU: printed by C++ before Python logging
# exists, none of them actionable (the cuInit "error" only says there is no CUDA driver).
_STARTUP_NOISE = ("All log messages before absl::InitializeLog() is called are written to STDERR",
                  "oneDNN custom operations are on", "Could not find cuda drivers on your machine",
                  "failed call to cuInit", "This TensorFlow binary is optimized to use available CPU instructions",
                  "To enable the following instructions:", "Unable to register cu", "computation placer already")


def has_nvidia_device() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*")) or bool(os.environ.get("INSPECTCNN_ASSUME_GPU"))


def quiet_tensorflow_start() -> None:
    """Import TensorFlow and look for GPUs with the process's stderr captured, then print back every line
    but the known start-up noise, so that a healthy run on a CPU machine shows no error line and a real
    warning or error still shows. Does nothing where an NVIDIA device exists (its messages matter there)
    or when TensorFlow is already imported; INSPECTCNN_TF_NOISE=1 turns it off."""
    if "tensorflow" in sys.modules or has_nvidia_device() or os.environ.get("INSPECTCNN_TF_NOISE") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines; warnings and errors stay
    with native_output_filtered(_STARTUP_NOISE, streams=(2,)):
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # cuInit runs here, inside the capture
        except ImportError:
            pass


# What the TFLite converter and the LiteRT interpreter print from C++ on every healthy conversion and load
CONVERTER_NOISE = ("fully_quantize: ", "Created TensorFlow Lite XNNPACK delegate for CPU",
                   "Estimated count of arithmetic ops", "WARNING: All log messages before absl::InitializeLog()")


@contextlib.contextmanager
def native_output_filtered(noise: tuple[str, ...], streams: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Run the block with the process's own file descriptors ``streams`` (1 stdout, 2 stderr) captured, then
    print back every line but those holding one of ``noise``: C++ libraries write there past Python's
    logging. A real warning or error is still printed (after the block); INSPECTCNN_TF_NOISE=1 keeps all."""
    if os.environ.get("INSPECTCNN_TF_NOISE") == "1":
        yield
        return
    import tempfile

    targets = {1: sys.stdout, 2: sys.stderr}
    captures, saved = {}, {}
    for fd in streams:
        targets[fd].flush()
        captures[fd] = tempfile.TemporaryFile(mode="w+b")
        saved[fd] = os.dup(fd)
        os.dup2(captures[fd].fileno(), fd)
    try:
        yield
    finally:
        for fd in streams:
            targets[fd].flush()
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            captures[fd].seek(0)
            text = captures[fd].read().decode(errors="replace")
            captures[fd].close()
            kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in noise)]
            if kept:
                print("\n".join(kept), file=targets[fd], flush=True)
