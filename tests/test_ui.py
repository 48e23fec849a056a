"""inspectcnn.ui (`make ui`): the URL of the experiment's runs table, and a server without the job runner."""

from __future__ import annotations


def test_make_ui_prints_the_runs_table_url_and_starts_no_job_runner(tmp_path):
    from mlflow.tracking import MlflowClient

    from inspectcnn.ui import experiment_url, server_command

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert experiment_url(store, "tiny", "127.0.0.1", 5000) == "http://127.0.0.1:5000/"  # no store yet
    assert not (tmp_path / "mlflow.db").exists()  # and none created by asking
    experiment_id = MlflowClient(store).create_experiment("tiny")
    assert experiment_url(store, "tiny", "127.0.0.1", 5000) == (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}?workflowType=machine_learning")
    assert experiment_url(store, "other", "127.0.0.1", 5000) == "http://127.0.0.1:5000/"
    command, env = server_command(store, "127.0.0.1", 5001)
    assert command[1:] == ["ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", "5001",
                           "--workers", "1"]
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
