"""Serving a trained model outside the pipeline: what travels with it, how a file becomes its input, and
one runner per format.

- :func:`inference_spec` is the ``inference.json`` that travels with every copy of the champion (the
  registered MLflow model, every exported file): its decision threshold, chosen on validation, the input
  it takes and the classes. ``inspectcnn predict`` reads it, so a model never silently labels at 0.5.
- :func:`preprocess` turns an image file into the model's input exactly as training saw it: decoded as
  prepare decodes, resized to the stored size as prepare stores, then to the model's size as the input
  pipeline does (both with :func:`inspectcnn.data.images.resize`), scaled to [0, 1].
- :func:`open_runner` opens a ``.keras``, ``.onnx``, ``.tflite`` or OpenVINO ``.xml`` file behind one
  ``predict(batch) -> probabilities`` call, each through its own runtime (the engines of
  :mod:`inspectcnn.formats`, the registry the export stage writes with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspectcnn.artifacts import INFERENCE_SPEC as SPEC_FILE
from inspectcnn.errors import UserError

SPEC_VERSION = 1


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
    """A model file behind ``predict(float32 NHWC batch) -> probabilities (N,)``; ``scores`` adds the
    out-of-distribution score where the file carries it (a second output: the score itself in an exported ONNX
    file, the features in a Keras copy, scored with ``ood``, the scorer of its inference spec)."""

    format: str
    path: Path
    _call: Any
    ood: Any = None

    def outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        found = self._call(np.ascontiguousarray(batch, dtype=np.float32))
        return [np.asarray(o) for o in found] if isinstance(found, (list, tuple)) else [np.asarray(found)]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.outputs(batch)[0].astype(np.float64).reshape(-1)

    def scores(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (N,), out-of-distribution scores (N,) or None when this copy carries none)."""
        found = self.outputs(batch)
        probabilities = found[0].astype(np.float64).reshape(-1)
        if len(found) < 2:
            return probabilities, None
        second = found[1].reshape(len(probabilities), -1)
        if second.shape[1] == 1:  # the score, computed in the file's graph
            return probabilities, second[:, 0].astype(np.float64)
        return probabilities, (self.ood(second) if self.ood is not None else None)


def format_of(path: Path) -> str:
    """The engine (runtime) that runs a model file, named by its suffix."""
    from inspectcnn.formats import ENGINES, engine_of

    found = engine_of(path)
    if found is None:
        suffixes = ", ".join(e.suffix for e in ENGINES.values())
        raise ServingError(f"{path}: unknown model format; use a {suffixes} file or models:/<name>@<alias>")
    return found.name


def open_runner(path: str | Path, tta: str = "none") -> Runner:
    """``path`` behind its own runtime: Keras (with ``tta`` built in), ONNX Runtime, the LiteRT
    interpreter or the OpenVINO runtime (:data:`inspectcnn.formats.ENGINES`)."""
    import importlib.util

    from inspectcnn.formats import ENGINES

    path = Path(path)
    engine = ENGINES[format_of(path)]
    if not path.is_file():
        raise FileNotFoundError(f"model {path} not found")
    if importlib.util.find_spec(engine.import_name) is None:
        raise ServingError(f"running a {engine.name} model needs the Python package {engine.package!r}, which is "
                           f"not installed (pip install {engine.package}; it is in requirements.txt)")
    return Runner(engine.name, path, engine.open(path, tta))


def spec_from_evaluation(name: str, model, evaluation: dict[str, Any], meta: dict[str, Any],
                         data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The inference spec of a pipeline model: its threshold and TTA from its ``eval.json`` (``evaluation``),
    the stored size, colour and classes from the prepared data's ``meta.json`` (``meta``)."""
    return inference_spec(model=name, threshold=evaluation["threshold"],
                          threshold_rule=evaluation.get("threshold_rule", "?"), size=int(model.input.shape[1]),
                          channels=int(model.input.shape[-1]), stored_size=int(meta["image_size"]),
                          color_mode="grayscale" if int(meta["channels"]) == 1 else "rgb",
                          classes=list(meta["classes"]), tta=evaluation.get("tta", "none"), data=data)


def data_card(prepared: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Which prepared data a model saw: source, classes, split sizes, the manifest's SHA-256."""
    from inspectcnn.data import store

    return {"source": meta.get("source"), "classes": meta.get("classes"),
            "splits": {k: v["count"] for k, v in meta["splits"].items()},
            "manifest_sha256": store.manifest_sha256(prepared)}


def entry_spec(name: str, model, evaluation: dict[str, Any], prepared: Path) -> dict[str, Any]:
    """The spec of a pipeline entry with the data card of the prepared data it was trained on (what the
    export stage writes beside every file and the registry stores beside the registered model)."""
    from inspectcnn.data.store import read_meta

    meta = read_meta(prepared)
    return spec_from_evaluation(name, model, evaluation, meta, data=data_card(prepared, meta))


def bare_spec(path: Path) -> dict[str, Any]:
    """A model file with nothing beside it: its own input size, one resize, threshold 0.5."""
    from inspectcnn.models.saving import load_model

    model = load_model(path)
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    return inference_spec(model=path.stem, threshold=0.5, threshold_rule="default 0.5, not chosen",
                          size=size, channels=channels, stored_size=size,
                          color_mode="grayscale" if channels == 1 else "rgb",
                          classes=["negative", "positive"], tta="none")


def find_spec(path: Path, prepared: Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """The inference spec of a model file and where it came from: ``inference.json`` beside it (registered
    and exported copies); for a pipeline's ``models/<entry>/model.keras``, one built from its ``eval.json``
    and the prepared data's ``meta.json``; else (None, "")."""
    from inspectcnn import artifacts
    from inspectcnn.data import store

    beside = path.parent / SPEC_FILE
    if beside.is_file():
        return read_spec(beside), str(beside)
    evaluation = artifacts.ModelFolder(path.parent).evaluation
    meta_file = Path(prepared or artifacts.PREPARED) / artifacts.PREPARED_META
    if path.suffix == ".keras" and evaluation.is_file() and meta_file.is_file():
        from inspectcnn.models.saving import load_model

        spec = spec_from_evaluation(path.parent.name, load_model(path), json.loads(evaluation.read_text()),
                                    store.read_meta(meta_file.parent))
        return spec, f"{evaluation} and {meta_file}"
    return None, ""


def served_runner(path: Path, spec: dict[str, Any]) -> Runner:
    """``path`` served as it was evaluated: a pipeline's bare ``.keras`` file gets its spec's test-time
    augmentation built in; a registered or exported copy (``inference.json`` beside it) already has it, and
    its out-of-distribution scorer when the spec has one (the feature bank beside it)."""
    from inspectcnn import ood

    bare_keras = path.suffix == ".keras" and not (path.parent / SPEC_FILE).is_file()
    runner = open_runner(path, tta=spec.get("tta", "none") if bare_keras else "none")
    if not bare_keras and spec.get("ood"):
        runner.ood = ood.load(spec, path.parent)
    return runner
