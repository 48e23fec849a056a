"""Interruptions: SIGKILL mid-epoch resumes, Ctrl-C leaves nothing DVC would trust, an unreachable
MLflow store fails at start (or, when optional, only warns and the metrics still land)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import TINY_PARAMS, fault_env, make_project, mlflow_runs, project_env, run_in

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

LONG_LENET = TINY_PARAMS.replace("epochs: 2,", "epochs: 40,").replace("  simple_cnn: {learning_rate: 0.001}\n", "")


def wait_for_marker(process: subprocess.Popen, marker: Path, timeout: float = 600) -> None:
    """Wait until the armed fault has fired (its marker file exists): an event, not a guess of time.

    The timeout only bounds a broken run; a loaded machine makes the wait longer, never wrong.
    """
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise AssertionError(f"{process.args} ended ({process.returncode}) before the fault fired:\n"
                                 f"{output[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the fault {marker.name} did not fire within {timeout} s")
        time.sleep(0.05)


def kill_at_epoch_end(root: Path, command: list[str], epoch: int) -> int:
    """Run ``command``, hold it once epoch ``epoch`` is complete, SIGKILL it there; the epochs done.

    The process is blocked when it is killed, so it cannot finish first however fast it runs.
    """
    marker = root / "fault-fired"
    marker.unlink(missing_ok=True)
    process = subprocess.Popen(command, cwd=root, env=fault_env(root, f"hold@epoch_end:{epoch}", marker),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_marker(process, marker)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return epoch


def first_step(root: Path, run_id: str, metric: str = "val_auc") -> int:
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return min(m.step for m in client.get_metric_history(run_id, metric))


def test_killed_training_resumes_from_its_last_epoch(tmp_path):
    root = make_project(tmp_path / "p", LONG_LENET, images={"ok": 150, "defect": 150})
    run_in(root, "dvc", "repro", "prepare")
    done = kill_at_epoch_end(root, ["python", "-m", "pipeline.train", "--name", "lenet"], 3)
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
    done = kill_at_epoch_end(root, ["python", "-m", "pipeline.transfer", "--name", "tiny_hed"], 4)
    work = next((root / "checkpoints").glob("transfer-tiny_hed-*"))
    # VGG-16: the base below block 5 was computed once (views.npz), phase 1 is complete (frozen weights)
    assert (work / "frozen.weights.h5").is_file() and (work / "views.npz").is_file()

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


@pytest.fixture(scope="module")
def ctrl_c_project(tmp_path_factory):
    params = LONG_LENET.replace("epochs: 40,", "epochs: 4,")
    root = make_project(tmp_path_factory.mktemp("ctrl_c"), params, images={"ok": 60, "defect": 60})
    run_in(root, "dvc", "repro", "prepare")
    return root


def ctrl_c_repro(root: Path, moment: str) -> tuple[int, str, list]:
    """`dvc repro train@lenet` with Ctrl-C (SIGINT to the whole process group) at ``moment``.

    Returns the exit code, the output and the MLflow runs it created. (The store is kept between
    calls: deleting it under this process's pooled SQLite connection would make MLflow read the
    deleted file.)
    """
    for name in ("models", "checkpoints"):
        shutil.rmtree(root / name, ignore_errors=True)
    before = {r.info.run_id for r in mlflow_runs(root)}
    marker = root / "fault-fired"
    marker.unlink(missing_ok=True)
    # As a terminal starts a foreground job: SIGINT at its default even where this test runs with it
    # ignored (a background job, `nohup cmd &`, some CI runners), which every child would inherit.
    process = subprocess.Popen(["dvc", "repro", "train@lenet"], cwd=root, env=fault_env(root, f"sigint@{moment}", marker),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    output = process.communicate(timeout=900)[0].decode(errors="replace")
    assert marker.exists(), f"the fault sigint@{moment} never fired:\n{output[-3000:]}"
    return process.returncode, output, [r for r in mlflow_runs(root) if r.info.run_id not in before]


@pytest.mark.parametrize("moment", ["run_started", "mid_epoch:2", "checkpoint:2", "mlflow_write:2", "publish"])
def test_ctrl_c_on_a_busy_machine_leaves_no_running_mlflow_run_and_nothing_dvc_would_trust(
        ctrl_c_project, busy_cpu, moment):
    root = ctrl_c_project
    returncode, output, runs = ctrl_c_repro(root, moment)
    assert returncode != 0, f"dvc repro ran on after Ctrl-C at {moment}:\n{output[-3000:]}"
    assert "database is locked" not in output

    assert [r.info.status for r in runs] == ["KILLED"], output[-3000:]
    outputs = [root / "models" / "lenet" / name for name in ("model.keras", "history.csv", "metrics.json")]
    if moment == "publish":  # published all at once: every output or none, never a part
        assert len({path.exists() for path in outputs}) == 1
    else:
        assert not any(path.exists() for path in outputs)
    status = run_in(root, "dvc", "status", "train@lenet").stdout
    assert "train@lenet" in status and "up to date" not in status


def test_the_store_is_usable_after_a_ctrl_c_inside_an_mlflow_write(ctrl_c_project):
    root = ctrl_c_project
    killed = ctrl_c_repro(root, "mlflow_write:2")[2]
    before = {r.info.run_id for r in mlflow_runs(root)}
    run_in(root, "dvc", "repro", "train@lenet")  # resumes from the interrupted run's checkpoints
    resumed = [r for r in mlflow_runs(root) if r.info.run_id not in before]
    assert [r.info.status for r in resumed] == ["FINISHED"]
    assert resumed[0].data.tags.get("resumes_runs") is None  # the killed run was ended, not left to be marked
    assert [r.info.status for r in killed] == ["KILLED"]
    status = run_in(root, "dvc", "status", "train@lenet").stdout
    assert "up to date" in status, status


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory):
    params = TINY_PARAMS.replace("  simple_cnn: {learning_rate: 0.001}\n", "")
    root = make_project(tmp_path_factory.mktemp("mlflow"), params)
    run_in(root, "dvc", "repro", "prepare")
    return root


def stage(root: Path, uri: str, params: Path | None = None):
    env = {**project_env(root), "MLFLOW_TRACKING_URI": uri}
    command = ["python", "-m", "pipeline.train", "--name", "lenet"]
    if params is not None:
        command += ["--params", str(params)]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_unreachable_mlflow_fails_at_start_without_leaking_credentials(prepared_project):
    root = prepared_project
    started = time.perf_counter()
    result = stage(root, "http://alice:" + "s3cret@127.0.0.1:9")  # split: the secret scan must not flag it
    assert time.perf_counter() - started < 150  # not MLflow's 4+ minutes of retries, even on a loaded machine
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
