"""Scale-out without GPUs: the project's own training path, data-parallel over two virtual CPU devices,
splits each global batch between them and ends on the weights of a one-device run.

JAX: ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` and ``keras.distribution.DataParallel``;
TensorFlow: two logical CPU devices and ``tf.distribute.MirroredStrategy`` (train.strategy: mirrored).
Each backend runs in its own process (data_parallel_check.py), since the devices are fixed at start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, make_project

pytestmark = pytest.mark.slow
CHECK = Path(__file__).with_name("data_parallel_check.py")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """64 images split 32/16/16: every global batch of 8 is full, so both runs see the same batches."""
    from inspectcnn.config import DataConfig
    from inspectcnn.data.prepare import run as prepare

    root = make_project(tmp_path_factory.mktemp("dp"), "", images={"ok": 40, "defect": 24})
    config = DataConfig(source="folder", path=str(root / "images"), image_size=24, classes=("ok", "defect"),
                        split={"train": 0.5, "val": 0.25, "test": 0.25})
    prepare(config, root / "prepared", root / "summary.json", seed=0)
    return root


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_two_device_data_parallel_fit_matches_one_device(prepared, backend):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    result = subprocess.run([sys.executable, str(CHECK), str(prepared / "prepared"), str(prepared / backend)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["backend"] == backend
    assert found["replicas"] == 2
    assert found["devices_seen_batch"] == [4]  # each device's copy of the model saw half of the global 8
    assert found["max_weight_change_by_training"] > 1e-3  # training moved the weights...
    assert found["max_weight_difference"] < 1e-5  # ...to the same place on two devices as on one
