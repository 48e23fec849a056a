"""The zoo under every Keras backend: the weights of each architecture, written under TensorFlow (this
process), load under JAX and PyTorch, give the same probabilities, and train a step."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import REPO
from inspectcnn.models import architecture, build_model, list_models

CHECK = Path(__file__).with_name("zoo_check.py")


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    keras.utils.set_random_seed(0)
    for name in list_models():
        size = max(32, architecture(name).min_size + 1)  # small but legal, as tests/models/test_zoo.py
        model = build_model(name, (size, size, 1), width=0.125)
        x = np.random.default_rng(0).random((4, size, size, 1), dtype=np.float32)
        model.save_weights(folder / f"{name}.weights.h5")
        np.savez(folder / f"{name}.npz", x=x, probabilities=model.predict(x, verbose=0))
    return folder


@pytest.mark.slow  # trains every architecture under two more backends (minutes)
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_architecture_predicts_alike_and_trains_under(backend, references):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, str(CHECK), str(references)], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["backend"] == backend
    assert set(found["models"]) == set(list_models())
    for name, row in found["models"].items():
        assert row["max_difference"] < 1e-4, (name, row)
        assert math.isfinite(row["loss"]), (name, row)
