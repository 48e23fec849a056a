"""A DVC remote round trip, as README "A team" documents it: one person runs the pipeline and pushes; a
colleague clones, pulls, and has every output without retraining: `dvc status` clean, `dvc repro` runs
nothing, and a pulled model scores new images exactly as the original does."""

from __future__ import annotations

import csv

import pytest

from helpers import copy_project, run_in

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]


def _scores(path):
    with path.open(newline="") as handle:
        return {"/".join(row["path"].split("/")[-2:]): (row["probability"], row["label"]) for row in csv.DictReader(handle)}


def test_a_colleague_pulls_every_output_from_a_local_remote_and_nothing_reruns(tmp_path, full_project):
    root = copy_project(full_project[0], tmp_path / "author")  # after its `dvc repro` (tests/pipeline/conftest.py)
    remote = tmp_path / "remote"
    run_in(root, "dvc", "remote", "add", "-d", "team", str(remote))
    run_in(root, "git", "add", "-A")
    run_in(root, *GIT, "commit", "-qm", "pipeline results")
    pushed = run_in(root, "dvc", "push")
    assert "pushed" in pushed.stdout + pushed.stderr

    colleague = tmp_path / "colleague"
    run_in(tmp_path, "git", "clone", "-q", str(root), str(colleague))
    assert not (colleague / "models" / "lenet" / "model.keras").exists()  # DVC-cached: not in git
    run_in(colleague, "dvc", "pull")
    for path in ("models/lenet/model.keras", "models/ensemble/model.keras", "data/prepared/meta.json",
                 "reports/export/model.onnx", "reports/report.html"):
        assert (colleague / path).is_file(), path
    status = run_in(colleague, "dvc", "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    repro = run_in(colleague, "dvc", "repro")
    assert "Running stage" not in repro.stdout, repro.stdout

    images = [str(root / "images" / "ok" / "000.png"), str(root / "images" / "defect" / "000.png")]
    for where in (root, colleague):
        run_in(where, "python", "-m", "inspectcnn.cli", "predict", "--model", "models/lenet/model.keras", *images,
               "--out", str(where / "scored.csv"))
    assert _scores(colleague / "scored.csv") == _scores(root / "scored.csv")
    assert len(_scores(root / "scored.csv")) == 2
