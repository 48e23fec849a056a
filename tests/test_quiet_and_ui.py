"""Issue 23's quiet run log and `make ui`, at their causes: the prepared data logged to MLflow without a
warning, converters' native lines held back while a real line still shows, and the UI's URL and server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

from helpers import tiny_prepared


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


def test_native_converter_lines_are_held_back_and_a_real_line_still_shows():
    code = """
import os, sys
from inspectcnn.backend import CONVERTER_NOISE, native_output_filtered
with native_output_filtered(CONVERTER_NOISE):
    os.write(1, b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32\\n")
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    os.write(2, b"E0000 a real converter error\\n")
    print("python's own line")
print("after")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "INSPECTCNN_TF_NOISE": ""})
    assert result.stdout.splitlines() == ["python's own line", "after"]
    assert result.stderr.splitlines() == ["E0000 a real converter error"]


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
