"""The ensemble: members and weights chosen on validation; one Keras model that averages them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inspectcnn import ensemble
from inspectcnn.config import EnsembleConfig
from inspectcnn.models.saving import load_model


def _member(size: int, seed: int, name: str, channels: int = 1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, channels))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(x), name=name)


def test_greedy_selection_adds_only_what_raises_the_validation_score():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    strong = np.clip(labels * 0.5 + rng.random(400) * 0.6, 0, 1)
    other_strong = np.clip(labels * 0.5 + rng.random(400) * 0.6, 0, 1)  # independent errors: helps
    noise = rng.random(400)  # no signal: never helps
    chosen = ensemble.select(labels, {"noise": noise, "a": strong, "b": other_strong}, EnsembleConfig())
    assert "noise" not in chosen and set(chosen) == {"a", "b"}
    assert sum(chosen.values()) == pytest.approx(1.0)
    mixed = ensemble.score_of(labels, {"a": strong, "b": other_strong}, chosen, "roc_auc")
    from sklearn.metrics import roc_auc_score

    assert mixed > max(roc_auc_score(labels, strong), roc_auc_score(labels, other_strong))
    assert ensemble.select(labels, {"noise": noise, "a": strong}, EnsembleConfig(selection="mean")) == \
        {"noise": 0.5, "a": 0.5}
    assert ensemble.select(labels, {"a": strong, "b": other_strong}, EnsembleConfig(max_members=1)) in \
        ({"a": 1.0}, {"b": 1.0})


def test_the_built_model_is_the_weighted_mean_of_its_members_and_loads_in_safe_mode(tmp_path):
    small, large = _member(16, 1, "small"), _member(32, 2, "large")
    weights = {"small": 0.25, "large": 0.75}
    model = ensemble.build({"small": small, "large": large}, weights)
    assert tuple(model.input.shape[1:]) == (32, 32, 1)
    x = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    resized = _pillow_resize(x, 16)
    expected = 0.25 * small.predict(resized, verbose=0) + 0.75 * large.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6)
    model.save(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(load_model(tmp_path / "ensemble.keras").predict(x, verbose=0), expected, atol=1e-6)


def _pillow_resize(x: np.ndarray, size: int) -> np.ndarray:
    """The input pipeline's filter (Pillow: box when shrinking), on float images, one channel at a time."""
    from PIL import Image

    from inspectcnn.data.images import resize as pipeline_resize

    method = Image.Resampling.BOX
    assert pipeline_resize(np.zeros((x.shape[1], x.shape[1]), np.uint8), size).shape == (size, size)
    return np.stack([np.stack([np.asarray(Image.fromarray(image[..., c], mode="F").resize((size, size), method))
                               for c in range(x.shape[-1])], axis=-1) for image in x])


def test_members_of_other_sizes_are_resized_with_the_pipelines_filter_and_the_ensemble_exports(tmp_path):
    """An ensemble whose members take other sizes (here 32 -> 24, not an integer factor) resizes
    inside the model with Pillow's own box filter as two fixed matrix products, so it matches what the
    members saw in training, and ONNX (no ResizeArea op) converts it; a member's Dropout stays out of the
    served graph."""
    from inspectcnn.config import ExportConfig
    from inspectcnn.export import export_model

    keras.utils.set_random_seed(4)
    inputs = keras.Input((24, 24, 1))
    hidden = keras.layers.Dropout(0.5, name="drop")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    dropped = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(
        keras.layers.GlobalAveragePooling2D()(hidden)), name="dropped")
    large = _member(32, 5, "large")
    model = ensemble.build({"dropped": dropped, "large": large}, {"dropped": 0.5, "large": 0.5})
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Resizing)]
    x = np.random.default_rng(2).random((6, 32, 32, 1)).astype("float32")
    expected = 0.5 * dropped.predict(_pillow_resize(x, 24), verbose=0) + 0.5 * large.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)
    rows = export_model(model, {"threshold": 0.5}, ["onnx", "openvino", "litert"], x, np.array([0, 1] * 3), x[:0],
                        ExportConfig(latency_runs=2), tmp_path)
    for fmt in ("onnx", "openvino", "litert"):
        assert rows[fmt]["status"] == "ok" and rows[fmt]["parity_max"] < 1e-5, rows[fmt]


def test_one_member_is_that_member():
    only = _member(16, 3, "only")
    model = ensemble.build({"only": only}, {"only": 1.0})
    x = np.random.default_rng(1).random((2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), only.predict(x, verbose=0), atol=1e-7)


def test_missing_or_mismatched_validation_predictions_are_named(tmp_path):
    from inspectcnn.artifacts import write_table

    with pytest.raises(ensemble.EnsembleError, match="lenet.csv not found; run evaluate for lenet"):
        ensemble.read_val_predictions(tmp_path, ["lenet"])
    write_table(tmp_path / "a.csv", [{"id": "1", "actual": 1, "probability": 0.9}, {"id": "2", "actual": 0,
                                                                                  "probability": 0.1}])
    write_table(tmp_path / "b.csv", [{"id": "1", "actual": 1, "probability": 0.8}])
    with pytest.raises(ensemble.EnsembleError, match="other cells"):
        ensemble.read_val_predictions(tmp_path, ["a", "b"])
