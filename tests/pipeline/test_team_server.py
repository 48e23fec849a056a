"""A team's tracking server, for real on the loopback interface: PostgreSQL as MLflow's backend store and
``mlflow server`` with a proxied artifact store (:mod:`inspectcnn.team_server`, what ``make server`` starts).

- the whole tiny pipeline runs against it with only MLFLOW_TRACKING_URI set: every run FINISHED with its
  per-epoch metrics, dataset and model; the artifacts went through the server; the champion is registered
  with its alias and description; ``inspectcnn predict --model models:/...@champion`` and
  ``mlflow models serve`` take it from the registry;
- two checkouts train the same stage at the same time, logging to the server and to one SQLite file: both
  runs FINISHED, neither taken for a killed process's run;
- the server stops in the middle of a training: the stage fails with a clear message and DVC records
  nothing; after the server is back a rerun completes; with ``mlflow.required: false`` the stage finishes
  and lists what was not logged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from helpers import FAULTS, TINY_PARAMS, make_project, project_env

pytestmark = pytest.mark.slow

PARAMS = TINY_PARAMS.split("transfer:")[0] + "transfer: {}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from inspectcnn import team_server

    try:
        team_server.postgres_bin()
    except team_server.ServerError as error:
        pytest.skip(f"{error} (.ci/run installs it)")
    folder = tmp_path_factory.mktemp("team") / "server"
    started = team_server.start(folder, port=0, db_port=0)
    yield started
    stopped = team_server.stop(folder)
    if stopped and stopped.pgdata.startswith("/var/tmp/"):
        shutil.rmtree(stopped.pgdata, ignore_errors=True)


def _env(root: Path, uri: str | None) -> dict[str, str]:
    env = project_env(root)
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def _run(root: Path, uri: str | None, *command: str, env: dict | None = None, timeout: int = 900):
    result = subprocess.run(list(command), cwd=root, env=env or _env(root, uri), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _runs(uri: str, experiment: str = "tiny") -> list:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=500) if found else []


def test_the_pipeline_runs_against_the_team_server_and_serves_from_its_registry(tmp_path, server):
    root = make_project(tmp_path / "team", PARAMS)
    _run(root, server.uri, "dvc", "repro")
    client = _client(server.uri)

    runs = _runs(server.uri)
    names = sorted(r.info.run_name for r in runs)
    assert {"train@lenet", "train@simple_cnn", "evaluate@lenet", "evaluate@simple_cnn"} <= set(names), names
    assert {r.info.status for r in runs} == {"FINISHED"}, [(r.info.run_name, r.info.status) for r in runs]
    assert len(names) == len(set(names))  # one run a stage
    train = next(r for r in runs if r.info.run_name == "train@lenet")
    assert [m.step for m in client.get_metric_history(train.info.run_id, "loss")] == [0, 1]  # per epoch
    assert train.inputs.dataset_inputs, "the prepared data set is the run's input"
    assert train.info.artifact_uri.startswith("mlflow-artifacts:"), train.info.artifact_uri  # proxied
    assert "history.png" in {a.path for a in client.list_artifacts(train.info.run_id)}
    stored = Path(server.folder) / "artifacts"
    assert any(p.name == "history.png" for p in stored.rglob("*")), "the files live in the server's store"
    assert not (root / "mlruns").exists() and not (root / "mlartifacts").exists()

    version = client.get_model_version_by_alias("inspectcnn-champion", "champion")
    champion = json.loads((root / "reports" / "champion.json").read_text())["champion"]
    assert champion in (version.description or ""), version.description

    images = [str(root / "images" / "ok" / "000.png"), str(root / "images" / "defect" / "000.png")]
    for model, out in (("models:/inspectcnn-champion@champion", "registry.csv"),
                       (f"models/{champion}/model.keras", "local.csv")):
        _run(root, server.uri, sys.executable, "-m", "inspectcnn.cli", "predict", "--model", model, *images,
             "--out", str(root / out))
    registry, local = (np.genfromtxt(root / name, delimiter=",", names=True, dtype=None, encoding="utf-8")
                       for name in ("registry.csv", "local.csv"))
    assert len(registry) == 2
    np.testing.assert_allclose(registry["probability"], local["probability"], atol=1e-5)
    _serve_from_registry(root, server.uri)


def _serve_from_registry(root: Path, uri: str) -> None:
    """`mlflow models serve` of the champion alias: one request answered with a probability."""
    import mlflow

    from inspectcnn.team_server import free_port

    mlflow.set_tracking_uri(uri)
    shape = mlflow.models.get_model_info("models:/inspectcnn-champion@champion").signature.inputs.inputs[0].shape
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                                "models:/inspectcnn-champion@champion", "--env-manager", "local", "-h", "127.0.0.1",
                                "-p", str(port)], cwd=root, env=_env(root, uri), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(1)
        batch = np.zeros((1, *shape[1:]), "float32").tolist()
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": batch}, timeout=120)
        assert answer.ok, answer.text
        predictions = answer.json()["predictions"]
        assert len(predictions) == 1 and 0.0 <= predictions[0]["probability"] <= 1.0, predictions
    finally:
        import os
        import signal

        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize("store", ["server", "sqlite"])
def test_two_checkouts_train_the_same_stage_at_the_same_time_on_one_store(tmp_path, server, store):
    """Two checkouts (two colleagues, or two sweeps) run ``train@lenet`` at the same time with different learning
    rates, logging to one store: the team server, or one SQLite file, on an experiment neither has created yet
    (both create it, its tags and its data set row in the same instant). Both runs end FINISHED in it, none in
    ``Default``, and neither takes the other, RUNNING meanwhile, for a run a killed process left (no KILLED mark,
    no ``resumes_runs`` tag)."""
    uri = server.uri if store == "server" else f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    (tmp_path / "shared").mkdir()
    rates = ("0.002", "0.003")
    roots = []
    for rate in rates:
        params = PARAMS.replace("  simple_cnn: {learning_rate: 0.001}\n", "").replace(
            "lenet: {learning_rate: 0.001}", f"lenet: {{learning_rate: {rate}}}").replace(
            "mlflow: {experiment: tiny}", f"mlflow: {{experiment: together-{store}}}")
        root = make_project(tmp_path / f"checkout-{rate}", params)
        _run(root, uri, "dvc", "repro", "prepare")
        roots.append(root)
    started = time.monotonic()
    processes = [subprocess.Popen(["dvc", "repro", "train@lenet"], cwd=root, env=_env(root, uri),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for root in roots]
    try:
        outputs = [process.communicate(timeout=600)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    seconds = time.monotonic() - started
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    runs = [r for r in _runs(uri, f"together-{store}") if r.info.run_name == "train@lenet"]
    assert not _runs(uri, "Default"), "a run landed outside its experiment"
    found = sorted((r.data.params["learning_rate"], r.info.status, r.data.tags.get("resumes_runs")) for r in runs)
    print(f"{store}: two checkouts trained at the same time in {seconds:.0f} s; runs: {found}")
    assert found == [(rate, "FINISHED", None) for rate in rates]  # none lost, doubled, or taken for a dead one
    assert _overlapping(runs), "the two runs never overlapped in time: nothing concurrent was tested"


def _overlapping(runs) -> bool:
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


def _train_with_server_stopping(root: Path, server, marker: Path):
    """`dvc repro train@lenet`, paused after epoch 1 while the whole server (MLflow and PostgreSQL) stops."""
    from inspectcnn import team_server

    env = {**_env(root, server.uri), "PYTHONPATH": f"{FAULTS}:{root / 'src'}",
           "INSPECTCNN_FAULT": "pause@epoch_end:1", "INSPECTCNN_FAULT_MARKER": str(marker)}
    process = subprocess.Popen(["dvc", "repro", "train@lenet"], cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0][-3000:]
        time.sleep(0.2)
    team_server.stop(Path(server.folder))
    marker.unlink()
    started = time.monotonic()
    output = process.communicate(timeout=300)[0]
    return process.returncode, output, time.monotonic() - started


def test_the_server_going_away_mid_training(tmp_path, server):
    from inspectcnn import team_server

    params = (PARAMS.replace("epochs: 2", "epochs: 4").replace("  simple_cnn: {learning_rate: 0.001}\n", "")
              .replace("mlflow: {experiment: tiny}", "mlflow: {experiment: away}"))
    root = make_project(tmp_path / "away", params)
    _run(root, server.uri, "dvc", "repro", "prepare")

    code, output, seconds = _train_with_server_stopping(root, server, tmp_path / "paused")
    team_server.start(Path(server.folder), port=server.port, db_port=server.db_port)
    print(f"required: the stage ended {code} {seconds:.1f} s after the server stopped")
    assert code != 0
    assert "lost the MLflow tracking store" in output and "DVC records nothing" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert not (root / "models" / "lenet" / "model.keras").exists()
    status = _run(root, server.uri, "dvc", "status", "train@lenet").stdout
    assert "train@lenet" in status and "up to date" not in status, status  # nothing taken as done

    _run(root, server.uri, "dvc", "repro", "train@lenet")  # the server is back: a rerun completes
    runs = sorted(_runs(server.uri, "away"), key=lambda r: r.info.start_time)
    assert [r.info.status for r in runs if r.info.run_name == "train@lenet"] == ["KILLED", "FINISHED"]
    assert runs[-1].data.tags.get("resumes_runs") == runs[0].info.run_id

    # Tracking optional: the stage finishes without the server and says what it did not log.
    (root / "params.yaml").write_text(params.replace("mlflow: {experiment: away}",
                                                     "mlflow: {experiment: away, required: false}")
                                      .replace("lenet: {learning_rate: 0.001}", "lenet: {learning_rate: 0.002}"))
    code, output, seconds = _train_with_server_stopping(root, server, tmp_path / "paused")
    team_server.start(Path(server.folder), port=server.port, db_port=server.db_port)
    print(f"optional: the stage ended {code} {seconds:.1f} s after the server stopped")
    assert code == 0, output[-3000:]
    assert "going on WITHOUT MLflow" in output and "is incomplete: not logged: the metrics of epoch 1, the metrics of epoch 2" in output, output[-3000:]
    assert (root / "models" / "lenet" / "model.keras").is_file()
    assert "up to date" in _run(root, server.uri, "dvc", "status", "train@lenet").stdout
