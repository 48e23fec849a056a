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
    resized = np.asarray(keras.layers.Resizing(16, 16, interpolation="area")(x))
    expected = 0.25 * small.predict(resized, verbose=0) + 0.75 * large.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6)
    model.save(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(load_model(tmp_path / "ensemble.keras").predict(x, verbose=0), expected, atol=1e-6)


def test_one_member_is_that_member():
    only = _member(16, 3, "only")
    model = ensemble.build({"only": only}, {"only": 1.0})
    x = np.random.default_rng(1).random((2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), only.predict(x, verbose=0), atol=1e-7)


def test_missing_or_mismatched_validation_predictions_are_named(tmp_path):
    from inspectcnn.dvc_outputs import write_table

    with pytest.raises(ensemble.EnsembleError, match="lenet.csv not found; run evaluate for lenet"):
        ensemble.read_val_predictions(tmp_path, ["lenet"])
    write_table(tmp_path / "a.csv", [{"id": "1", "actual": 1, "probability": 0.9}, {"id": "2", "actual": 0,
                                                                                  "probability": 0.1}])
    write_table(tmp_path / "b.csv", [{"id": "1", "actual": 1, "probability": 0.8}])
    with pytest.raises(ensemble.EnsembleError, match="other cells"):
        ensemble.read_val_predictions(tmp_path, ["a", "b"])
