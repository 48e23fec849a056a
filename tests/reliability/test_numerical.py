"""A diverging run: a clear NaN message, a FAILED MLflow run, and no model saved anywhere."""

from __future__ import annotations

import pytest

from inspectcnn.config import DataConfig, parse_params
from inspectcnn.data.prepare import run as prepare
from inspectcnn.training.tracked import run as train_entry
from inspectcnn.training import TrainingError

pytestmark = pytest.mark.reliability


def test_diverging_learning_rate_fails_the_run_and_saves_nothing(tmp_path, monkeypatch):
    from helpers import make_project

    root = make_project(tmp_path / "p", "", images={"ok": 30, "defect": 18})
    prepare(DataConfig(source="folder", path=str(root / "images"), image_size=24, classes=("ok", "defect")), root / "prepared",
            root / "summary.json", seed=0)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    params = parse_params({
        "seed": 0,
        "mlflow": {"experiment": "nan"},
        "models": {"lenet": {"image_size": 24, "batch_size": 8, "epochs": 10, "learning_rate": 10.0,
                             "optimizer": "sgd", "schedule": "constant", "class_weight": "none",
                             "early_stopping_patience": 0}},
    })
    # lr 10 (the largest params.yaml accepts) overflows on most trajectories but not all: multithreaded
    # sums vary with the load, and some recover. A step of 1e9 overflows on every one.
    import keras

    from inspectcnn.training import scratch

    monkeypatch.setattr(scratch, "make_optimizer", lambda config, steps: keras.optimizers.SGD(1e9, momentum=0.9))
    out = root / "models" / "lenet"
    with pytest.raises(TrainingError, match=r"loss became NaN/inf in epoch \d.*Lower models.lenet.learning_rate"):
        train_entry("lenet", params, root / "prepared", out)
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()
    assert not list((root / "checkpoints").glob("lenet-*"))  # nothing left to resume from

    from helpers import mlflow_runs

    runs = mlflow_runs(root, "nan")
    assert [r.info.status for r in runs] == ["FAILED"]
    from inspectcnn.tracking.registry import logged_model_uri

    assert logged_model_uri(runs[0].info.run_id) is None
