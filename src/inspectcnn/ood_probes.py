"""The out-of-distribution score (:mod:`inspectcnn.ood`) fitted for the exported champion and checked: the bank
from the training split, the threshold from the validation split, then the share flagged and the ROC-AUC on
probe sets (the test split, noise, constant frames, photographs, rotated and blurred cells). The export stage's
part; serving needs only :mod:`inspectcnn.ood`."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from inspectcnn.ood import (
    BANK_FILE,
    KnnScore,
    flagged,
    normalise,
    predict_features,
    scored_model,
    served_features_model,
    spec_entry,
    threshold,
    usable_stages,
)

log = logging.getLogger(__name__)


def photo_crops(count: int, rng: np.random.Generator, spec: dict[str, Any]) -> np.ndarray:
    """``count`` random square crops of the photographs scikit-learn ships (a palace, a flower), as the model's
    input (:func:`inspectcnn.serving.preprocess`): ordinary photographs, not cells."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from inspectcnn.serving import preprocess

    photos = load_sample_images().images
    grayscale = spec["input"]["color_mode"] == "grayscale"
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        side = int(rng.integers(96, min(photo.shape[:2]) + 1))
        top, left = (int(rng.integers(0, d - side + 1)) for d in photo.shape[:2])
        crop = photo[top:top + side, left:left + side]
        crops.append(preprocess(np.asarray(Image.fromarray(crop).convert("L")) if grayscale else crop, spec))
    return np.stack(crops)


def probe_sets(test_images: np.ndarray, seed: int, spec: dict[str, Any]) -> dict[str, tuple[str, np.ndarray]]:
    """The images the score is checked on, name -> (what they are, images): (a) the test split; (b) uniform
    noise; (c) constant frames from black to white; (d) crops of ordinary photographs; (e) the test cells
    rotated by 90 degrees and heavily blurred (still cells: they should mostly pass)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    shape = test_images.shape[1:]
    return {
        "test": ("(a) the test split's cells (in distribution)", test_images),
        "noise": ("(b) uniform noise", rng.random((100, *shape), dtype=np.float32)),
        "constant": ("(c) constant frames, black to white (11 levels)",
                     np.stack([np.full(shape, v, np.float32) for v in np.linspace(0.0, 1.0, 11)])),
        "photographs": ("(d) crops of ordinary photographs (scikit-learn's samples)", photo_crops(60, rng, spec)),
        "rotated": ("(e) test cells rotated by 90 degrees", np.ascontiguousarray(np.rot90(test_images, 1, axes=(1, 2)))),
        "blurred": ("(e) test cells blurred (Gaussian, sigma 3 px)",
                    gaussian_filter(test_images, sigma=(0, 3, 3, 0)).astype(np.float32)),
    }


def check_table(scores: dict[str, np.ndarray], descriptions: dict[str, str], value: float) -> list[dict]:
    """A row per probe set: the share flagged at the threshold and the ROC-AUC of separating it from the test
    split by the score (test cells the negatives)."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for name, values in scores.items():
        row = {"set": name, "description": descriptions[name], "count": int(len(values)),
               "flagged": round(float(flagged(values, value).mean()), 4),
               "median_score": round(float(np.median(values)), 4)}
        if name != "test":
            truth = np.r_[np.zeros(len(scores["test"])), np.ones(len(values))]
            row["roc_auc_vs_test"] = round(float(roc_auc_score(truth, np.r_[scores["test"], values])), 4)
        rows.append(row)
    return rows


def fit_for_export(model, tta: str, prepared: Path, config, spec: dict[str, Any], seed: int, out: Path):
    """The champion's score fitted (bank from the training split, threshold on validation), its bank saved into
    ``out`` and its entry added to ``spec``; checked on the probe sets. Returns (the scored model for the ONNX
    export, the test images, their scores, the ``ood`` record of export.json)."""
    from inspectcnn.export import split_arrays

    stages = usable_stages(model, tuple(config.stages))
    served = served_features_model(model, tta, stages)
    size, channels = int(served.input.shape[1]), int(served.input.shape[-1])
    with tempfile.TemporaryDirectory() as staging:
        runner = features_runner(served, Path(staging))
        bank = predict_features(runner, split_arrays(prepared, "train", size, channels)[0])[1]
        scorer = KnnScore(bank, config.k)
        val_scores = scorer(predict_features(runner, split_arrays(prepared, "val", size, channels)[0])[1])
        value = threshold(val_scores, config.pass_rate)
        spec["ood"] = spec_entry(config, bank, value, len(val_scores), stages)
        np.save(Path(out) / BANK_FILE, normalise(bank))
        test_images = split_arrays(prepared, "test", size, channels)[0]
        sets = probe_sets(test_images, seed, spec)
        scores = {}
        for name, (_, images) in sets.items():
            if name == "rotated" and tta == "dihedral":  # a rotated cell's 8 views are the cell's own 8 views, so
                scores[name] = scores["test"]  # its averaged features, and score, are the test cell's
            else:
                scores[name] = scorer(predict_features(runner, images)[1])
    record = {**spec["ood"], "val_flagged": round(float(flagged(val_scores, value).mean()), 4),
              "checks": check_table(scores, {n: d for n, (d, _) in sets.items()}, value)}
    return scored_model(model, tta, bank, config.k, stages), test_images, scores["test"], record


class _OpenVinoFeatures:
    """A two-output model compiled by OpenVINO, called like a Keras model by :func:`predict_features`."""

    def __init__(self, compiled):
        self.compiled = compiled

    def predict_on_batch(self, images: np.ndarray):
        found = self.compiled(np.ascontiguousarray(images, np.float32))
        return found[0], found[1]


def features_runner(served, staging: Path):
    """What computes the served model's (probability, features) for the bank, the threshold and the probe sets:
    the model exported to OpenVINO (``staging``) and run by its CPU runtime in float32 when OpenVINO is
    installed (about 4x Keras on TensorFlow for the 8-view champion on 2 cores, the same features within
    float32 rounding), else the Keras model itself."""
    try:
        import openvino  # noqa: F401 - installed or not: which runner
    except ImportError:
        return served
    from inspectcnn import formats

    try:
        with formats.converting():
            served.export(str(staging / "features.xml"), format="openvino", verbose=False)
        compiled = formats.compile_openvino(staging / "features.xml")  # the bank must not depend on the CPU
    except Exception as error:  # noqa: BLE001 - any failure: the Keras model computes the same features
        log.warning("OpenVINO cannot run the features model (%s: %s); Keras computes them",
                    type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
        return served
    return _OpenVinoFeatures(compiled)


def onnx_parity(path: Path, images: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """The ONNX file's second output (the score computed in its graph) against the scikit-learn score."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    found = np.concatenate([np.ravel(session.run(None, {name: images[i:i + 32]})[1])
                            for i in range(0, len(images), 32)]).astype(np.float64)
    return {"ood_parity_max": float(f"{np.abs(found - expected).max():.3g}"),
            "ood_output_name": session.get_outputs()[1].name}
