"""inspectcnn.tracking.lifecycle: every stage's run, its states, tags and params, with and without a store."""

from __future__ import annotations

import json
import warnings

import pytest

from helpers import tiny_prepared


def test_stage_run_tags_every_run_the_same_way(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from inspectcnn import tracking
    from inspectcnn.config import parse_params

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    params = parse_params({"mlflow": {"experiment": "stage-units"}})
    with tracking.stage_run("evaluate@m", "evaluate", params, {"entry": "m"}, tags={"entry": "m"}) as run:
        run_id = run.run_id
    tags = MlflowClient(store).get_run(run_id).data.tags
    assert tags["dvc_stage"] == "evaluate@m" and tags["kind"] == "evaluate" and tags["entry"] == "m"
    assert tags["params_hash"] == tracking.params_hash({"entry": "m"})
    import platform

    import keras

    from inspectcnn.devices import describe

    assert tags["keras_version"] == keras.__version__ and tags["python_version"] == platform.python_version()
    assert tags["device"] == describe() and tags["keras_backend"] == keras.backend.backend()
    assert tags["git_commit"] == tracking.git_commit() and tags["git_commit"]
    assert tags["mlflow.runName"] == "evaluate@m"


def test_start_run_ends_finished_or_failed_with_the_stage_tags_params_and_experiment_kind(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from inspectcnn import tracking

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with tracking.start_run("train@m", experiment="units", params={"train": {"epochs": 2, "schedule": None}},
                            tags={"kind": "train"}) as run:
        run.log_metrics({"val_auc": 0.5}, step=0)
        finished = run.run_id
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run("train@m", experiment="units", params={}, tags={"kind": "train"}) as run:
            failed = run.run_id
            raise RuntimeError("boom")
    client = MlflowClient(store)
    assert client.get_experiment_by_name("units").tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND
    done = client.get_run(finished)
    assert done.info.status == "FINISHED" and done.data.tags["kind"] == "train"
    assert done.data.params == {"train.epochs": "2", "train.schedule": "null"}
    assert client.get_run(failed).info.status == "FAILED"


def test_start_run_without_a_reachable_store_fails_clearly_or_runs_untracked_when_optional(tmp_path, monkeypatch):
    from inspectcnn import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(tracking.TrackingUnavailableError, match="mlflow.required: false"):
        with tracking.start_run("train@m", experiment="units", params={}, tags={}):
            pass
    with tracking.start_run("train@m", experiment="units", params={}, tags={}, required=False) as run:
        assert not run.active and run.run_id is None


def test_the_prepared_data_is_logged_with_an_explicit_source_and_declared_types_and_no_warning(tmp_path,
                                                                                               monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from inspectcnn.tracking import prepared_dataset

    prepared = tiny_prepared(tmp_path / "project")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    experiment = MlflowClient(store).create_experiment("dataset")  # not the process's last active experiment
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # MLflow's "interpreted in multiple ways" and integer hints
        dataset = prepared_dataset(prepared)
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_input(dataset, context="training")
    logged = MlflowClient(store).get_run(run.info.run_id).inputs.dataset_inputs[0].dataset
    assert logged.name == "folder-prepared-24px" and logged.source_type == "local"
    assert str((prepared / "manifest.csv").resolve()) in logged.source
    columns = {c["name"]: c["type"] for c in json.loads(logged.schema)["mlflow_colspec"]}
    assert columns["label"] == "long" and columns["id"] == "string" and columns["split"] == "string"


def test_only_runs_of_processes_that_ended_are_marked_killed(tmp_path, monkeypatch):
    """A stage's start marks KILLED the RUNNING runs of its name whose process has ended (here: a pid that
    exited, an untagged run); the run of a process still running, and one of another machine, stay RUNNING."""
    import socket
    import subprocess
    import sys

    import psutil
    from mlflow.tracking import MlflowClient

    from inspectcnn import tracking
    from inspectcnn.tracking import lifecycle

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    client = MlflowClient(store)
    experiment = client.create_experiment("stale")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended_started = psutil.Process(ended.pid).create_time()
    ended.wait()
    host = socket.gethostname()
    tags = {"alive": lifecycle.process_tag(),  # this test's own process
            "other_machine": f"{host}-elsewhere|1|0.00",
            "exited": f"{host}|{ended.pid}|{ended_started:.2f}",
            "reused_pid": f"{host}|{psutil.Process().pid}|{psutil.Process().create_time() - 60:.2f}",
            "untagged": None}
    ids = {}
    for name, tag in tags.items():
        run = client.create_run(experiment, run_name="train@m",
                                tags={lifecycle.PROCESS_TAG: tag} if tag else {})
        ids[name] = run.info.run_id

    killed = tracking.mark_stale_runs("stale", "train@m")

    assert sorted(killed) == sorted(ids[name] for name in ("exited", "reused_pid", "untagged"))
    statuses = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert statuses == {"alive": "RUNNING", "other_machine": "RUNNING", "exited": "KILLED",
                        "reused_pid": "KILLED", "untagged": "KILLED"}


def test_every_run_names_its_process(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from inspectcnn import tracking
    from inspectcnn.config import parse_params
    from inspectcnn.tracking import lifecycle

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with tracking.stage_run("train@m", "train", parse_params({"mlflow": {"experiment": "who"}}), {}) as run:
        run_id = run.run_id
    tag = MlflowClient(store).get_run(run_id).data.tags[lifecycle.PROCESS_TAG]
    assert tag == lifecycle.process_tag() and not lifecycle.process_gone(tag)


def test_a_lost_race_on_the_server_is_tried_again_and_any_other_error_is_not(monkeypatch):
    """Two stages creating one experiment's tag at once on a server: the loser's "duplicate key value" is a lost
    race, tried again; a plain refusal (a permission error) is raised at once."""
    import time

    from inspectcnn.tracking import lifecycle

    calls = []

    def select(uri, experiment, run_name):
        calls.append(experiment)
        if experiment == "race" and len(calls) == 1:
            raise RuntimeError('duplicate key value violates unique constraint "experiment_tag_pk"')
        if experiment == "refused":
            raise PermissionError("PERMISSION_DENIED: not allowed")
        return []

    monkeypatch.setattr(lifecycle, "_select_experiment", select)
    monkeypatch.setattr(lifecycle, "check_reachable", lambda uri: None)  # no server: the race is what is tested
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    assert lifecycle._open_experiment("http://127.0.0.1:5000", "race", "train@m") == []
    assert calls == ["race", "race"]
    calls.clear()
    with pytest.raises(PermissionError, match="PERMISSION_DENIED"):
        lifecycle._open_experiment("http://127.0.0.1:5000", "refused", "train@m")
    assert calls == ["refused"]


def test_a_run_lands_in_its_experiment_when_another_process_created_it_in_the_same_instant(tmp_path, monkeypatch):
    """MLflow's set_experiment, on losing the race to create the experiment, returns it without making it the
    active one: the stage's run must still land in it, not in "Default"."""
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    from inspectcnn import tracking
    from inspectcnn.config import parse_params

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    client = MlflowClient(store)
    raced = client.create_experiment("raced")  # by "the other process", after this one looked
    real, calls = TrackingServiceClient.get_experiment_by_name, []

    def missing_at_first(self, name):
        calls.append(name)
        return None if len(calls) == 1 else real(self, name)

    monkeypatch.setattr(TrackingServiceClient, "get_experiment_by_name", missing_at_first)
    with tracking.stage_run("train@m", "train", parse_params({"mlflow": {"experiment": "raced"}}), {}) as run:
        run_id = run.run_id
    assert client.get_run(run_id).info.experiment_id == raced


OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from inspectcnn.tracking import lifecycle
go = Path(sys.argv[2])
(go.parent / f"ready-{sys.argv[3]}").touch()  # MLflow imported: waiting for the signal
while not go.exists():
    time.sleep(0.01)
lifecycle._open_experiment(sys.argv[1], "at-once", "train@m")
"""


def test_processes_opening_a_new_sqlite_store_at_once_all_get_it(tmp_path):
    """Three stages start together on a SQLite store that does not exist yet: each would create its tables, and
    MLflow's schema migration run twice at once leaves a file no retry opens ("table _alembic_tmp_tags already
    exists"). Under the store's lock one creates them and the others find them: all three select the one
    experiment."""
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    store, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, store, str(go), str(i)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 3:
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "a process did not start"
        time.sleep(0.05)
    go.touch()
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], "\n".join(outputs)[-3000:]
    names = [e.name for e in MlflowClient(store).search_experiments()]
    assert sorted(names) == ["Default", "at-once"]


def test_a_store_lock_held_too_long_stops_with_the_lock_file_named(tmp_path):
    from filelock import FileLock

    from inspectcnn.tracking import TrackingUnavailableError
    from inspectcnn.tracking.lifecycle import store_lock

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with FileLock(f"{tmp_path / 'mlflow.db'}.lock"):  # another process opening the store, as far as filelock knows
        with pytest.raises(TrackingUnavailableError, match=r"mlflow\.db\.lock for 0 s; if none is running, delete"):
            with store_lock(store, timeout_s=0.2):
                pass
    with store_lock(store, timeout_s=0.2):  # released: taken at once
        pass
    with store_lock("http://127.0.0.1:5000", timeout_s=0.2):  # a server: nothing to lock
        pass
