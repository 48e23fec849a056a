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


def feature_model(model, stages: tuple[int, ...] = ()):
    """``model`` with two outputs: its probability and its features for the score: the penultimate activations
    (its last layer's input), and with ``stages`` (EfficientNet-Lite transfer models) before them the
    global-average-pooled outputs of those stages of its backbone, each part L2-normalised (a feature
    ensemble across depths, as Lee et al. 2018 combine layers: the deep features tell cells apart, the early
    ones see texture and layout that any cell has and noise or a blank frame lacks). The probability is the
    model's own, computed by the same layers in one pass."""
    import keras
    from keras import layers

    last = model.layers[-1]
    source = last.input
    if isinstance(source, (list, tuple)) or not isinstance(last, keras.layers.Dense):
        raise OodError(f"{model.name}: its last layer {last.name!r} is not a Dense layer over one feature vector "
                       "(an ensemble of several members has none); no out-of-distribution score")
    if not stages:
        return keras.Model(model.input, [model.output, source], name=f"{model.name}_with_features")
    names = [layer.name for layer in model.layers]
    if "backbone" not in names:
        raise OodError(f"{model.name}: ood stages {list(stages)} need a transfer model (a nested 'backbone'); "
                       "set export.ood.stages: [] for the penultimate features alone")
    index = names.index("backbone")
    base, chain = model.layers[index], model.layers[index + 1:]
    taps = [base.get_layer(name).output for name in _stage_layers(base, stages)]
    multi = keras.Model(base.input, [*taps, base.output], name="backbone_taps")
    found = multi(model.layers[index - 1].output)
    x = found[-1]
    for layer in chain[:-1]:  # the head after the backbone, replayed (a chain: features, pooling, dense, dropout)
        x = layer(x)
    probability = chain[-1](x)
    parts = [layers.UnitNormalization(name=f"ood_stage{s}")(layers.GlobalAveragePooling2D(name=f"ood_pool{s}")(t))
             for s, t in zip(stages, found[:-1])]
    parts.append(layers.UnitNormalization(name="ood_penultimate")(x))
    features = layers.Concatenate(name="ood_features")(parts)
    return keras.Model(model.input, [probability, features], name=f"{model.name}_with_features")


def usable_stages(model, stages: tuple[int, ...]) -> tuple[int, ...]:
    """``stages`` where ``model`` is a transfer model on an EfficientNet-Lite backbone, else () (the penultimate
    features alone: a from-scratch network has no stages of that name)."""
    names = [layer.name for layer in model.layers]
    if not stages or "backbone" not in names:
        return ()
    try:
        _stage_layers(model.get_layer("backbone"), stages)
    except OodError:
        return ()
    return tuple(stages)


def _stage_layers(base, stages: tuple[int, ...]) -> list[str]:
    """The layers of an EfficientNet-Lite base that end ``stages``."""
    from inspectcnn.efficientnet_lite import VARIANTS, stage_outputs, stage_repeats

    blocks = sum(layer.name.endswith("_depthwise") for layer in base.layers)
    variant = next((v for v in VARIANTS if sum(stage_repeats(v)) == blocks), None)
    if variant is None:
        raise OodError(f"ood stages name EfficientNet-Lite stages; the backbone {base.name!r} is not one "
                       "(set export.ood.stages: [])")
    return [stage_outputs(variant)[s] for s in stages]


def served_features_model(model, tta: str, stages: tuple[int, ...] = ()):
    """The model as served (``tta`` views averaged) with its averaged features (:func:`feature_model`) as a
    second output: stock layers only (loads with ``safe_mode``, registers and exports like the single-output
    model)."""
    from inspectcnn import dihedral

    return dihedral.tta_model(feature_model(model, stages), tta)


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


def spec_entry(config, bank: np.ndarray, value: float, val_count: int, stages: tuple[int, ...]) -> dict[str, Any]:
    """What ``inference.json`` carries under ``ood`` (``stages``: those the features include)."""
    return {"method": "knn", "k": int(config.k), "threshold": round(float(value), 6), "pass_rate": config.pass_rate,
            "bank": BANK_FILE, "bank_size": int(len(bank)), "dims": int(bank.shape[1]),
            "stages": list(stages),
            "score": "Euclidean distance of the features (mean over the test-time views; the penultimate "
                     "activations" + (f" and the pooled outputs of backbone stages {list(stages)}, each part"
                                      if stages else ",") + " L2-normalised) to the k-th nearest training "
                     "cell's (Sun et al. 2022)",
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


def scored_model(model, tta: str, bank: np.ndarray, k: int, stages: tuple[int, ...] = ()):
    """The served model with the score in the graph: outputs (probability, ood_score); for the ONNX export.
    The top-k layer is not a stock Keras layer, so this model is exported, never saved as ``.keras``."""
    import keras
    from keras import layers

    served = served_features_model(model, tta, stages)
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
