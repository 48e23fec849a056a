"""Interruptions: SIGKILL mid-epoch resumes, Ctrl-C leaves nothing DVC would trust, an unreachable
MLflow store fails at start (or, when optional, only warns and the metrics still land)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import TINY_PARAMS, make_project, mlflow_runs, project_env, run_in

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

LONG_LENET = TINY_PARAMS.replace("epochs: 2,", "epochs: 40,").replace("  simple_cnn: {learning_rate: 0.001}\n", "")


def wait_for_rows(process, pattern: str, root: Path, rows: int, timeout: float = 300) -> int:
    """Completed epochs in the work folder's history.csv once it has ``rows`` (or the process ended)."""
    deadline = time.time() + timeout
    done = 0
    while time.time() < deadline and process.poll() is None:
        files = list((root / "checkpoints").glob(pattern))
        done = len(files[0].read_text().splitlines()) - 1 if files else 0
        if done >= rows:
            break
        time.sleep(0.05)
    return done


def kill_after(root: Path, command: list[str], pattern: str, rows: int) -> int:
    """Start ``command`` in the project, SIGKILL it once its history has ``rows`` epochs; the epochs done."""
    process = subprocess.Popen(command, cwd=root, env=project_env(root), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    done = wait_for_rows(process, pattern, root, rows)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert done >= rows, f"{' '.join(command)} finished or never reached epoch {rows} before the kill"
    return done


def first_step(root: Path, run_id: str, metric: str = "val_auc") -> int:
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return min(m.step for m in client.get_metric_history(run_id, metric))


def test_killed_training_resumes_from_its_last_epoch(tmp_path):
    root = make_project(tmp_path / "p", LONG_LENET, images={"ok": 150, "defect": 150})
    run_in(root, "dvc", "repro", "prepare")
    done = kill_after(root, ["python", "-m", "pipeline.train", "--model", "lenet"], "lenet-*/history.csv", 3)
    killed = mlflow_runs(root)[0]
    assert killed.info.status == "RUNNING"  # a SIGKILLed process cannot close its run
    assert not (root / "models" / "lenet" / "model.keras").exists()

    run_in(root, "dvc", "repro", "train@lenet")
    runs = {r.info.run_id: r for r in mlflow_runs(root)}
    assert runs[killed.info.run_id].info.status == "KILLED"
    resumed = next(r for r in runs.values() if r.info.run_id != killed.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumes_runs"] == killed.info.run_id
    assert first_step(root, resumed.info.run_id) >= done  # started after the epochs already done, not from 0
    metrics = json.loads((root / "models" / "lenet" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 40
    assert not list((root / "checkpoints").glob("lenet-*"))  # the work folder is gone once results are published
    assert "up to date" in run_in(root, "dvc", "status", "train@lenet").stdout


def test_killed_transfer_resumes_in_its_second_phase_without_recomputing_features(tmp_path):
    params = TINY_PARAMS.replace("frozen_epochs: 2, finetune_epochs: 1", "frozen_epochs: 2, finetune_epochs: 25")
    root = make_project(tmp_path / "p", params, images={"ok": 60, "defect": 60})
    run_in(root, "dvc", "repro", "prepare")
    done = kill_after(root, ["python", "-m", "pipeline.transfer", "--name", "tiny_hed"],
                      "transfer-tiny_hed-*/history.csv", 4)
    work = next((root / "checkpoints").glob("transfer-tiny_hed-*"))
    assert (work / "frozen.keras").is_file() and (work / "features.npz").is_file()

    run_in(root, "python", "-m", "pipeline.transfer", "--name", "tiny_hed")
    runs = {r.info.run_id: r for r in mlflow_runs(root)}
    resumed = next(r for r in runs.values() if r.info.status == "FINISHED")
    assert "resumes_runs" in resumed.data.tags
    assert first_step(root, resumed.info.run_id) >= done
    metrics = json.loads((root / "models" / "tiny_hed" / "metrics.json").read_text())
    run = json.loads((root / "models" / "tiny_hed" / "run.json").read_text())
    assert metrics["epochs_run"] == 27
    assert "feature_extraction_s" not in run and "frozen_phase_s" not in run  # phase 1 was not redone
    history = (root / "models" / "tiny_hed" / "history.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in history[1:]] == list(range(1, 28))


def test_ctrl_c_during_repro_leaves_no_output_dvc_would_trust(tmp_path):
    root = make_project(tmp_path / "p", LONG_LENET, images={"ok": 150, "defect": 150})
    run_in(root, "dvc", "repro", "prepare")
    # As a terminal starts a foreground job: SIGINT at its default even where this test runs with it
    # ignored (a background job, `nohup cmd &`, some CI runners), which every child would inherit.
    process = subprocess.Popen(["dvc", "repro", "train@lenet"], cwd=root, env=project_env(root),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    done = wait_for_rows(process, "lenet-*/history.csv", root, 2)
    assert done >= 2
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    output = process.communicate(timeout=120)[0].decode(errors="replace")
    assert process.returncode != 0, f"dvc repro ran on after Ctrl-C at epoch {done}:\n{output[-3000:]}"

    assert not (root / "models" / "lenet" / "model.keras").exists()
    assert not (root / "models" / "lenet" / "metrics.json").exists()
    status = run_in(root, "dvc", "status", "train@lenet").stdout
    assert "train@lenet" in status and "up to date" not in status
    assert [r.info.status for r in mlflow_runs(root)] == ["KILLED"]


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory):
    params = TINY_PARAMS.replace("  simple_cnn: {learning_rate: 0.001}\n", "")
    root = make_project(tmp_path_factory.mktemp("mlflow"), params)
    run_in(root, "dvc", "repro", "prepare")
    return root


def stage(root: Path, uri: str, params: Path | None = None):
    env = {**project_env(root), "MLFLOW_TRACKING_URI": uri}
    command = ["python", "-m", "pipeline.train", "--model", "lenet"]
    if params is not None:
        command += ["--params", str(params)]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_unreachable_mlflow_fails_at_start_without_leaking_credentials(prepared_project):
    root = prepared_project
    started = time.perf_counter()
    result = stage(root, "http://alice:" + "s3cret@127.0.0.1:9")  # split: the secret scan must not flag it
    assert time.perf_counter() - started < 60  # not MLflow's minutes of retries
    assert result.returncode == 2
    assert "cannot reach the MLflow tracking store http://***@127.0.0.1:9" in result.stderr
    assert "mlflow.required: false" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert not (root / "models" / "lenet").exists()
    assert not list(root.glob("checkpoints/lenet-*"))


def test_optional_mlflow_unreachable_trains_warns_and_keeps_the_metrics(prepared_project):
    root = prepared_project
    params = root / "optional.yaml"
    params.write_text((root / "params.yaml").read_text().replace("mlflow: {experiment: tiny}",
                                                                 "mlflow: {experiment: tiny, required: false}"))
    result = stage(root, f"sqlite:///{root / 'no' / 'such' / 'folder' / 'mlflow.db'}", params)
    assert result.returncode == 0, result.stderr
    assert "running WITHOUT MLflow tracking" in result.stderr
    metrics = json.loads((root / "models" / "lenet" / "metrics.json").read_text())
    run = json.loads((root / "models" / "lenet" / "run.json").read_text())
    assert metrics["epochs_run"] == 2 and "best_val_auc" in metrics
    assert "mlflow_run_id" not in run
    assert (root / "models" / "lenet" / "model.keras").is_file()
