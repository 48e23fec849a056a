"""Serving a trained model outside the pipeline: what travels with it, how a file becomes its input, and
one runner per format.

- :func:`inference_spec` is the ``inference.json`` that travels with every copy of the champion (the
  registered MLflow model, every exported file): its decision threshold, chosen on validation, the input
  it takes and the classes. ``inspectcnn predict`` reads it, so a model never silently labels at 0.5.
- :func:`preprocess` turns an image file into the model's input exactly as training saw it: decoded as
  prepare decodes, resized to the stored size as prepare stores, then to the model's size as the input
  pipeline does (both with :func:`inspectcnn.data.images.resize`), scaled to [0, 1].
- :func:`open_runner` opens a ``.keras``, ``.onnx``, ``.tflite`` or OpenVINO ``.xml`` file behind one
  ``predict(batch) -> probabilities`` call, each through its own runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspectcnn.errors import UserError

SPEC_FILE = "inference.json"
SPEC_VERSION = 1
SUFFIXES = {".keras": "keras", ".onnx": "onnx", ".tflite": "litert", ".xml": "openvino"}


class ServingError(UserError, ValueError):
    """A model file that cannot be served: unknown format, missing runtime, missing inference spec."""


def inference_spec(*, model: str, threshold: float, threshold_rule: str, size: int, channels: int,
                   stored_size: int, color_mode: str, classes: list[str], tta: str,
                   data: dict[str, Any] | None = None) -> dict[str, Any]:
    """What any copy of a model needs to be used as it was evaluated (written as ``inference.json``)."""
    return {
        "version": SPEC_VERSION,
        "model": model,
        "threshold": float(threshold),
        "threshold_rule": f"{threshold_rule} on the validation split",
        "classes": list(classes),
        "positive_class": classes[1],
        "output": f"probability that the image is {classes[1]!r} (label 1 when probability >= threshold)",
        "input": {"size": int(size), "channels": int(channels), "stored_size": int(stored_size),
                  "color_mode": color_mode, "dtype": "float32", "layout": "NHWC", "scale": "pixel / 255"},
        "preprocessing": (f"decode as {color_mode}; resize to {stored_size}x{stored_size}, then to {size}x{size} "
                          "(box filter when shrinking, bicubic when enlarging); divide by 255"
                          + ("; repeat the gray channel 3 times" if channels == 3 and color_mode == "grayscale"
                             else "")),
        "tta": tta,
        "data": data or {},
    }


def write_spec(spec: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPEC_FILE
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def read_spec(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ServingError(f"{path}: not a readable inference spec ({error})") from None
    missing = [k for k in ("threshold", "input", "classes") if k not in spec]
    if missing:
        raise ServingError(f"{path}: inference spec lacks {missing}")
    return spec


def preprocess(pixels: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """uint8 pixels as decoded by :func:`inspectcnn.data.images.read_image` -> float32 (S, S, C) in [0, 1],
    the same two resizes as prepare + the input pipeline (measured: benchmarks/preprocess_parity.py)."""
    from inspectcnn.data.images import resize

    shape = spec["input"]
    stored = resize(pixels, int(shape["stored_size"]))
    array = resize(stored, int(shape["size"])).astype(np.float32) / np.float32(255.0)
    if array.ndim == 2:
        array = array[..., None]
    if int(shape["channels"]) == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def read_file(path: Path, spec: dict[str, Any]) -> np.ndarray:
    """One image file as the model's input (BadImageError when it cannot be decoded)."""
    from inspectcnn.data.images import read_image

    return preprocess(read_image(path, spec["input"]["color_mode"]), spec)


@dataclass
class Runner:
    """A model file behind ``predict(float32 NHWC batch) -> probabilities (N,)``."""

    format: str
    path: Path
    _call: Any

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float64).reshape(-1)


def format_of(path: Path) -> str:
    found = SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise ServingError(f"{path}: unknown model format; use a {', '.join(SUFFIXES)} file or models:/<name>@<alias>")
    return found


def _missing(package: str, fmt: str) -> ServingError:
    return ServingError(f"running a {fmt} model needs the Python package {package!r}, which is not installed "
                        f"(pip install {package}; it is in requirements.txt)")


def open_runner(path: str | Path, tta: str = "none") -> Runner:
    """``path`` behind its own runtime: Keras (with ``tta`` built in), ONNX Runtime, the LiteRT
    interpreter or the OpenVINO runtime (float32 inference precision: no silent bf16 on CPUs that have it)."""
    path = Path(path)
    fmt = format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} not found")
    if fmt == "keras":
        from inspectcnn import dihedral
        from inspectcnn.models.saving import load_model

        model = dihedral.tta_model(load_model(path), tta)
        return Runner(fmt, path, model.predict_on_batch)
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise _missing("onnxruntime", fmt) from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return Runner(fmt, path, lambda x: session.run(None, {name: x})[0])
    if fmt == "litert":
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise _missing("ai-edge-litert", fmt) from None
        interpreter = Interpreter(model_path=str(path))
        source = interpreter.get_input_details()[0]["index"]
        target = interpreter.get_output_details()[0]["index"]
        shape = [None]

        def call(x):
            if shape[0] != x.shape:  # the batch dimension is dynamic: size the tensors for this batch
                interpreter.resize_tensor_input(source, list(x.shape))
                interpreter.allocate_tensors()
                shape[0] = x.shape
            interpreter.set_tensor(source, x)
            interpreter.invoke()
            return interpreter.get_tensor(target).copy()

        return Runner(fmt, path, call)
    try:
        import openvino
    except ImportError:
        raise _missing("openvino", fmt) from None
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return Runner(fmt, path, lambda x: compiled(x)[0])


def spec_from_evaluation(name: str, model, evaluation: dict[str, Any], meta: dict[str, Any],
                         data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The inference spec of a pipeline model: its threshold and TTA from its ``eval.json`` (``evaluation``),
    the stored size, colour and classes from the prepared data's ``meta.json`` (``meta``)."""
    return inference_spec(model=name, threshold=evaluation["threshold"],
                          threshold_rule=evaluation.get("threshold_rule", "?"), size=int(model.input.shape[1]),
                          channels=int(model.input.shape[-1]), stored_size=int(meta["image_size"]),
                          color_mode="grayscale" if int(meta["channels"]) == 1 else "rgb",
                          classes=list(meta["classes"]), tta=evaluation.get("tta", "none"), data=data)


def find_spec(path: Path, prepared: Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """The inference spec of a model file and where it came from: ``inference.json`` beside it (registered
    and exported copies); for a pipeline's ``models/<entry>/model.keras``, one built from its ``eval.json``
    and the prepared data's ``meta.json``; else (None, "")."""
    from inspectcnn import paths

    beside = path.parent / SPEC_FILE
    if beside.is_file():
        return read_spec(beside), str(beside)
    evaluation = path.parent / "eval.json"
    meta_file = (prepared or paths.PREPARED) / "meta.json"
    if path.suffix == ".keras" and evaluation.is_file() and meta_file.is_file():
        from inspectcnn.models.saving import load_model

        spec = spec_from_evaluation(path.parent.name, load_model(path), json.loads(evaluation.read_text()),
                                    json.loads(meta_file.read_text()))
        return spec, f"{evaluation} and {meta_file}"
    return None, ""


def register_champion(served_model, spec: dict[str, Any], *, registry_name: str, run, description: str,
                      tags: dict[str, str], alias: str = "champion") -> str:
    """Log ``served_model`` with its ``spec`` as the pyfunc of :mod:`inspectcnn.champion_pyfunc` into
    ``run`` (a :class:`inspectcnn.tracking.Run`), register it under ``registry_name`` with ``description``
    and ``tags`` on the version, point ``alias`` at it; returns ``models:/<name>@<alias>``."""
    import tempfile
    import warnings
    from importlib.metadata import version

    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.tracking import MlflowClient
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    from inspectcnn import interrupts, tracking

    if not run.active:
        return None
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per stage, not a bar per file
    shape = spec["input"]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float32"), (-1, shape["size"], shape["size"], shape["channels"]),
                                  "image")]),
        outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label"), ColSpec("string", "class")]),
        params=ParamSchema([ParamSpec("threshold", "double", float(spec["threshold"]))]),
    )
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(), interrupts.deferred():
        warnings.simplefilter("ignore")
        served_model.save(Path(folder) / "model.keras")
        spec_file = write_spec(spec, Path(folder))
        info = mlflow.pyfunc.log_model(
            name="champion", python_model=str(Path(__file__).with_name("champion_pyfunc.py")),
            artifacts={"keras_model": str(Path(folder) / "model.keras"), "inference": str(spec_file)},
            signature=signature, pip_requirements=[*tracking.model_requirements(), f"pandas=={version('pandas')}"],
        )
        registered = mlflow.register_model(info.model_uri, registry_name)
        client = MlflowClient(tracking.tracking_uri())
        client.update_model_version(registry_name, registered.version, description=description)
        for key, value in tags.items():
            client.set_model_version_tag(registry_name, registered.version, key, str(value))
        client.set_registered_model_alias(registry_name, alias, registered.version)
    return f"models:/{registry_name}@{alias}"
