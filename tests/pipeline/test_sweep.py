"""A parameter sweep as README documents it: queued DVC experiments, run one after another; each shows in
`dvc exp show` with its metrics and lands in the workspace's MLflow store (not in a temporary copy's)."""

from __future__ import annotations

import json

import pytest

from helpers import TINY_PARAMS, make_project, run_in

pytestmark = pytest.mark.slow

SWEEP_PARAMS = (TINY_PARAMS.replace("  simple_cnn: {learning_rate: 0.001}\n", "")
                .split("transfer:")[0] + "transfer: {}\n").replace("ensemble: {candidates: auto, max_members: 3}",
                                                                    "ensemble: {candidates: [lenet]}")


def _experiments(show: list[dict]) -> list[dict]:
    """(learning rate, scores.json) of each experiment in `dvc exp show --json`."""
    found = []
    for commit in show:
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                data = revision.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("models/lenet/scores.json", {}).get("data", {})
                found.append({"learning_rate": params.get("models", {}).get("lenet", {}).get("learning_rate"),
                              "roc_auc": metrics.get("roc_auc"), "name": revision.get("name")})
    return found


def test_a_two_point_sweep_shows_in_dvc_exp_show_and_in_the_workspace_mlflow_store(tmp_path):
    import mlflow

    root = make_project(tmp_path / "sweep", SWEEP_PARAMS)
    # the sweep reruns train@lenet and evaluate@lenet only (a target keeps the test short; a real sweep
    # runs without one and reruns the ensemble, export and report too)
    run_in(root, "dvc", "repro", "evaluate@lenet")
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    run_in(root, "git", "add", "-A")
    run_in(root, *git, "commit", "-qm", "baseline")
    for rate in ("0.002", "0.004"):
        run_in(root, "dvc", "exp", "run", "--queue", "-S", f"models.lenet.learning_rate={rate}", "evaluate@lenet")
    run_in(root, "dvc", "exp", "run", "--run-all", "-j", "1")
    show = json.loads(run_in(root, "dvc", "exp", "show", "--json").stdout)
    swept = {e["learning_rate"]: e for e in _experiments(show) if e["learning_rate"] in (0.002, 0.004)}
    assert set(swept) == {0.002, 0.004}, _experiments(show)
    assert all(0.0 <= e["roc_auc"] <= 1.0 for e in swept.values())
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["tiny"], filter_string="attributes.run_name = 'train@lenet'",
                              output_format="list")
    rates = sorted(float(r.data.params["learning_rate"]) for r in runs)
    assert rates == [0.001, 0.002, 0.004]  # the baseline and both sweep points, in the workspace's store
    assert not list((root / ".dvc" / "tmp").rglob("mlflow.db"))  # no run left in a temporary copy
