"""End to end on the shared tiny git + DVC project (``full_project``, tests/pipeline/conftest.py): dvc repro trains,
logs to MLflow, reruns only what changed."""

from __future__ import annotations

import json
import re

import pytest

from helpers import copy_project, mlflow_runs, run_in

pytestmark = pytest.mark.slow


def ran_stages(output: str) -> list[str]:
    return sorted(set(re.findall(r"Running stage '([^']+)'", output)))


@pytest.fixture(scope="module")
def project(full_project):
    """(root, the output of its first `dvc repro`): the shared project, read only (an edit works on a copy)."""
    root, _ = full_project
    return root, (root.parent / "repro.log").read_text()


def test_repro_trains_every_entry(project):
    root, output = project
    assert ran_stages(output) == [
        "anomaly@tiny_padim", "champion", "distil", "ensemble", "evaluate@lenet", "evaluate@simple_cnn",
        "evaluate_anomaly@tiny_padim", "evaluate_edge", "evaluate_ensemble", "evaluate_transfer@tiny_hed", "export",
        "health", "prepare", "register", "report", "train@lenet", "train@simple_cnn", "transfer@tiny_hed",
    ]
    for name in ("lenet", "simple_cnn"):
        folder = root / "models" / name
        assert (folder / "model.keras").stat().st_size > 0
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["epochs_run"] == 2 and 0.0 <= metrics["best_val_auc"] <= 1.0
        assert (folder / "history.csv").read_text().splitlines()[0].startswith("epoch,")


def test_one_finished_mlflow_run_per_entry_with_epochs_and_model(project):
    import mlflow

    root, _ = project
    runs = {r.info.run_name: r for r in mlflow_runs(root)
            if not r.info.run_name.startswith(("evaluate@", "register@"))}
    assert set(runs) == {"train@lenet", "train@simple_cnn", "transfer@tiny_hed", "anomaly@tiny_padim", "ensemble",
                         "distil@edge"}
    anomaly = runs.pop("anomaly@tiny_padim")  # fitted on good cells, no epochs
    assert anomaly.info.status == "FINISHED" and anomaly.data.tags["dvc_stage"] == "anomaly@tiny_padim"
    distil = runs.pop("distil@edge")  # the edge student: its own run, with its teacher and one epoch
    assert distil.info.status == "FINISHED" and distil.data.tags["dvc_stage"] == "distil"
    assert distil.data.tags["teacher"] == json.loads((root / "reports" / "champion.json").read_text())["champion"]
    ensemble = runs.pop("ensemble")
    assert ensemble.info.status == "FINISHED" and ensemble.data.tags["kind"] == "ensemble"
    assert any(k.startswith("weight_") for k in ensemble.data.metrics)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for name, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvc_stage"] == name and len(run.data.tags["params_hash"]) == 12
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_auc")]
        if name.startswith("train@"):
            assert run.data.params["learning_rate"] == "0.001" and run.data.params["augment.flip"] == "horizontal"
            assert steps == [0, 1]
        else:  # two frozen epochs on cached features, then one fine-tuning epoch
            assert run.data.params["weights"] == "hed-vgg16" and run.data.tags["kind"] == "transfer"
            assert steps == [0, 1, 2]
        models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
        assert any(m.source_run_id == run.info.run_id for m in models)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"history.png", "history.csv"} <= artifacts


def test_second_repro_runs_nothing(project):
    root, _ = project
    output = run_in(root, "dvc", "repro").stdout
    assert ran_stages(output) == []
    assert "up to date" in output.lower()


def test_editing_one_learning_rate_reruns_only_that_entry(project, tmp_path):
    root = copy_project(project[0], tmp_path / "edited")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("lenet: {learning_rate: 0.001}", "lenet: {learning_rate: 0.002}"))
    output = run_in(root, "dvc", "repro").stdout
    # the ensemble chooses on every entry's validation probabilities: it is rebuilt and re-evaluated too; the
    # champion is chosen again (it may change), so the export and the edge student follow
    assert ran_stages(output) == ["champion", "distil", "ensemble", "evaluate@lenet", "evaluate_edge",
                                  "evaluate_ensemble", "export", "register", "report", "train@lenet"]
