"""Out-of-distribution score of the served champion: deep nearest neighbours (Sun et al. 2022, "Out-of-distribution
detection with deep nearest neighbors").

An image's **features** are the champion's penultimate activations (the input of its last ``Dense``), averaged
over its test-time views and L2-normalised; its **score** is the Euclidean distance to the k-th nearest
feature of the training split's cells (the feature **bank**). The **threshold** is the ``pass_rate`` quantile
(95 %) of the validation cells' scores, so that 95 % of in-distribution cells pass; an image above it is out of
distribution and gets no decision (``unknown``). Bank, k and threshold travel in the inference spec
(``inference.json``, key ``ood``) beside the bank file; the exported ONNX model computes the same score as its
second output (a matrix product with the bank and a top-k), the Keras copies with scikit-learn's
``NearestNeighbors`` on their features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

BANK_FILE = "ood_bank.npy"
SCORE_OUTPUT = "ood_score"


class OodError(ValueError):
    """A model the score cannot be computed for (no single penultimate feature vector)."""


def feature_model(model):
    """``model`` with two outputs: its probability and the penultimate features (its last layer's input)."""
    import keras

    last = model.layers[-1]
    source = last.input
    if isinstance(source, (list, tuple)) or not isinstance(last, keras.layers.Dense):
        raise OodError(f"{model.name}: its last layer {last.name!r} is not a Dense layer over one feature vector "
                       "(an ensemble of several members has none); no out-of-distribution score")
    return keras.Model(model.input, [model.output, source], name=f"{model.name}_with_features")


def served_features_model(model, tta: str):
    """The model as served (``tta`` views averaged) with its averaged penultimate features as a second output:
    stock layers only (loads with ``safe_mode``, registers and exports like the single-output model)."""
    from inspectcnn import dihedral

    return dihedral.tta_model(feature_model(model), tta)


def normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), np.float32(1e-12))


class KnnScore:
    """The k-th nearest neighbour distance of normalised features to the bank (scikit-learn)."""

    def __init__(self, bank: np.ndarray, k: int):
        from sklearn.neighbors import NearestNeighbors

        if not 1 <= k <= len(bank):
            raise OodError(f"ood k={k}: the feature bank holds {len(bank)} cells")
        self.bank, self.k = normalise(bank), int(k)
        self.index = NearestNeighbors(n_neighbors=self.k).fit(self.bank)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        distances, _ = self.index.kneighbors(normalise(features))
        return distances[:, -1].astype(np.float64)


def threshold(val_scores: np.ndarray, pass_rate: float) -> float:
    """The score below which ``pass_rate`` of the validation cells lie (never the test split's)."""
    return float(np.quantile(np.asarray(val_scores, np.float64), pass_rate))


def predict_features(model, images: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N,), features (N, D)) of a two-output model over ``images``."""
    probabilities, features = [], []
    for start in range(0, len(images), batch):
        p, f = model.predict_on_batch(images[start:start + batch])
        probabilities.append(np.asarray(p, np.float64).reshape(-1))
        features.append(np.asarray(f, np.float32))
    return np.concatenate(probabilities), np.concatenate(features)


def spec_entry(config, bank: np.ndarray, value: float, val_count: int) -> dict[str, Any]:
    """What ``inference.json`` carries under ``ood``."""
    return {"method": "knn", "k": int(config.k), "threshold": round(float(value), 6), "pass_rate": config.pass_rate,
            "bank": BANK_FILE, "bank_size": int(len(bank)), "dims": int(bank.shape[1]),
            "score": "Euclidean distance of the L2-normalised penultimate features (mean over the test-time "
                     "views) to the k-th nearest training cell's (Sun et al. 2022)",
            "threshold_rule": f"{config.pass_rate:.0%} quantile of the validation split's scores ({val_count} cells)",
            "above_threshold": "out of distribution: no decision (unknown)"}


def load(spec: dict[str, Any], folder: Path) -> KnnScore | None:
    """The scorer of a spec's ``ood`` entry with its bank from ``folder``; None when the spec has none."""
    entry = spec.get("ood")
    if not entry:
        return None
    path = Path(folder) / entry.get("bank", BANK_FILE)
    if not path.is_file():
        raise OodError(f"{path} not found: the inference spec names an out-of-distribution feature bank that is "
                       "not beside it")
    return KnnScore(np.load(path), int(entry["k"]))


def scored_model(model, tta: str, bank: np.ndarray, k: int):
    """The served model with the score in the graph: outputs (probability, ood_score); for the ONNX export.
    The top-k layer is not a stock Keras layer, so this model is exported, never saved as ``.keras``."""
    import keras
    from keras import layers

    served = served_features_model(model, tta)
    probability, features = served.outputs
    normalised = layers.UnitNormalization(name="ood_normalise")(features)
    similarity = layers.Dense(len(bank), use_bias=False, trainable=False, name="ood_bank")
    similarities = similarity(normalised)
    similarity.set_weights([normalise(bank).T])
    score = KthDistance(k, name=SCORE_OUTPUT)(similarities)
    return keras.Model(served.input, [probability, score], name=f"{model.name}_with_ood")


def _kth_distance_layer():
    import keras

    class KthDistance(keras.layers.Layer):
        """Cosine similarities to the bank -> distance to the k-th nearest: sqrt(2 - 2 s_k) on unit vectors."""

        def __init__(self, k: int, **kwargs):
            super().__init__(**kwargs)
            self.k = int(k)

        def call(self, similarities):
            from keras import ops

            top, _ = ops.top_k(similarities, self.k)
            kth = top[:, self.k - 1:self.k]
            return ops.sqrt(ops.maximum(2.0 - 2.0 * kth, 0.0))

    return KthDistance


def KthDistance(k: int, **kwargs):  # noqa: N802 - a layer, built lazily (Keras is imported on first use)
    return _kth_distance_layer()(k, **kwargs)


def flagged(scores: np.ndarray, value: float) -> np.ndarray:
    """True where an image is out of distribution (its score above the threshold)."""
    return np.asarray(scores, np.float64) > value


# --------------------------------------------------------------------------- fitted and checked by the export stage


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

    served = served_features_model(model, tta)
    size, channels = int(served.input.shape[1]), int(served.input.shape[-1])
    bank = predict_features(served, split_arrays(prepared, "train", size, channels)[0])[1]
    scorer = KnnScore(bank, config.k)
    val_scores = scorer(predict_features(served, split_arrays(prepared, "val", size, channels)[0])[1])
    value = threshold(val_scores, config.pass_rate)
    spec["ood"] = spec_entry(config, bank, value, len(val_scores))
    np.save(Path(out) / BANK_FILE, normalise(bank))
    test_images = split_arrays(prepared, "test", size, channels)[0]
    sets = probe_sets(test_images, seed, spec)
    scores = {name: scorer(predict_features(served, images)[1]) for name, (_, images) in sets.items()}
    record = {**spec["ood"], "val_flagged": round(float(flagged(val_scores, value).mean()), 4),
              "checks": check_table(scores, {n: d for n, (d, _) in sets.items()}, value)}
    return scored_model(model, tta, bank, config.k), test_images, scores["test"], record


def onnx_parity(path: Path, images: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """The ONNX file's second output (the score computed in its graph) against the scikit-learn score."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    found = np.concatenate([np.ravel(session.run(None, {name: images[i:i + 32]})[1])
                            for i in range(0, len(images), 32)]).astype(np.float64)
    return {"ood_parity_max": float(f"{np.abs(found - expected).max():.3g}"),
            "ood_output_name": session.get_outputs()[1].name}
