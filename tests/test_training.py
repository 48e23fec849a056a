"""Training in-process on tiny data: determinism, class weights (faults: tests/reliability)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inspectcnn.config import TrainConfig
from inspectcnn.training import class_weights, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from helpers import tiny_prepared

    return tiny_prepared(tmp_path_factory.mktemp("data"))


def tiny(**overrides) -> TrainConfig:
    return TrainConfig(**{"arch": "lenet", "image_size": 24, "batch_size": 8, "epochs": 2,
                          "early_stopping_patience": 0, **overrides})


def test_deterministic_runs_give_identical_weights(prepared, tmp_path):
    weights = []
    for attempt in ("a", "b"):
        config = tiny(deterministic=True, augment={"flip": "horizontal", "rotation": 0.05})
        result = train("lenet", config, prepared, tmp_path / attempt, seed=3, work_dir=tmp_path / f"w{attempt}")
        weights.append(keras.saving.load_model(result.model_path).get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_balanced_class_weights():
    assert class_weights([0, 0, 0, 1]) == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}
