"""deterministic: true on a CPU: two complete runs (train + evaluate) give byte-identical files."""

from __future__ import annotations

import shutil

import pytest

from helpers import TINY_PARAMS, make_project, run_in

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

FILES = ("metrics.json", "history.csv", "eval.json", "predictions.csv", "roc.csv", "pr.csv")


def test_two_deterministic_runs_give_byte_identical_metrics_files(tmp_path):
    params = TINY_PARAMS.replace("epochs: 2,", "epochs: 3, deterministic: true,")
    params = params.replace("  simple_cnn: {learning_rate: 0.001}\n", "")
    root = make_project(tmp_path / "p", params)
    run_in(root, "dvc", "repro", "prepare")
    outputs = root / "models" / "lenet"
    runs = []
    for attempt in range(2):
        shutil.rmtree(outputs, ignore_errors=True)
        run_in(root, "python", "-m", "pipeline.train", "--name", "lenet")
        run_in(root, "python", "-m", "pipeline.evaluate", "--name", "lenet")
        runs.append({name: (outputs / name).read_bytes() for name in FILES})
    for name in FILES:
        assert runs[0][name] == runs[1][name], f"{name} differs between two deterministic runs"
    # What legitimately differs (timings, latencies, MLflow run ids) lives in the *run.json files.
    assert (outputs / "run.json").is_file() and (outputs / "eval_run.json").is_file()
