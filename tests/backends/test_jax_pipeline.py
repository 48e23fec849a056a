"""The whole pipeline under ``backend: jax``: prepare -> train -> transfer -> evaluate -> ensemble -> report
through ``dvc repro`` on tiny data, with no TensorFlow in any Keras stage, and MLflow saying which backend
ran each run. Changing the backend back reruns every Keras stage and nothing else."""

from __future__ import annotations

import json
import re

import pytest

from helpers import FULL_PARAMS, make_project, mlflow_runs, run_in

pytestmark = pytest.mark.slow

# every stage fails loudly if anything imports TensorFlow while it runs under JAX
NO_TF = """
import sys


class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras"):
            raise ImportError(f"{name} imported under backend: jax")


sys.meta_path.insert(0, NoTensorFlow())
"""


def ran_stages(output: str) -> list[str]:
    return sorted(set(re.findall(r"Running stage '([^']+)'", output)))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    pytest.importorskip("jax")
    root = make_project(tmp_path_factory.mktemp("jax"), FULL_PARAMS.replace("backend: tensorflow", "backend: jax"))
    (root / "src" / "sitecustomize.py").write_text(NO_TF + "\n")  # on PYTHONPATH: runs first in every stage
    first = run_in(root, "dvc", "repro")
    return root, first.stdout


def test_every_stage_runs_under_jax_without_tensorflow(project):
    root, output = project
    assert ran_stages(output) == [
        "anomaly@tiny_padim", "champion", "distil", "ensemble", "evaluate@lenet", "evaluate@simple_cnn",
        "evaluate_anomaly@tiny_padim", "evaluate_edge", "evaluate_ensemble", "evaluate_transfer@tiny_hed", "export",
        "health", "prepare", "register", "report", "train@lenet", "train@simple_cnn", "transfer@tiny_hed",
    ]
    anomaly = json.loads((root / "models" / "tiny_padim" / "metrics.json").read_text())
    assert anomaly["onnx_check"].startswith("skipped: ONNX export under the jax backend needs")
    # every exporter of Keras goes through TensorFlow under JAX: each format skipped, with that reason
    export = json.loads((root / "reports" / "export.json").read_text())
    assert {r["status"] for f, r in export["formats"].items() if f != "keras"} == {"skipped"}
    assert "tensorflow" in export["formats"]["onnx"]["reason"] and "jax" in export["formats"]["litert_int8"]["reason"]
    for name in ("lenet", "simple_cnn", "tiny_hed", "ensemble"):
        evaluated = json.loads((root / "models" / name / "eval.json").read_text())
        assert 0.0 <= evaluated["roc_auc"] <= 1.0 and evaluated["tta"] == "flips"
    summary = json.loads((root / "reports" / "summary.json").read_text())
    assert summary["champion"] in ("lenet", "simple_cnn", "tiny_hed", "ensemble")
    assert "jax" in (root / "reports" / "report.md").read_text()


def test_mlflow_runs_name_the_backend(project):
    root, _ = project
    runs = mlflow_runs(root)
    assert runs and all(r.data.tags.get("keras_backend") == "jax" for r in runs)
    assert all(r.data.params.get("backend") == "jax" for r in runs if "backend" in r.data.params)
    trained = [r for r in runs if r.data.tags.get("kind") in ("train", "transfer")]
    assert len(trained) == 3 and all("jax_version" in r.data.tags for r in trained)


def test_a_model_trained_under_jax_loads_under_tensorflow(project):
    """The .keras files are backend-neutral: what JAX trained, TensorFlow (this process) serves alike."""
    import numpy as np

    from inspectcnn.data.dataset import load_split
    from inspectcnn.models.saving import load_model

    root, _ = project
    model = load_model(root / "models" / "lenet" / "model.keras")
    data = load_split(root / "data" / "prepared", "test", image_size=32, batch_size=64, channels=1)
    probabilities = np.concatenate([np.asarray(model(data[i][0])).ravel() for i in range(len(data))])
    import csv

    with (root / "models" / "lenet" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # evaluate@lenet ran the flips-TTA model; its mean over 4 views is close to, not equal to, view 0
    assert len(rows) == len(probabilities) and np.all((probabilities >= 0) & (probabilities <= 1))


def test_switching_the_backend_reruns_the_keras_stages_only(project):
    root, _ = project
    params = (root / "params.yaml").read_text().replace("backend: jax", "backend: tensorflow")
    (root / "params.yaml").write_text(params)
    (root / "src" / "sitecustomize.py").unlink()
    status = run_in(root, "dvc", "status").stdout
    for stage in ("train@lenet", "transfer@tiny_hed", "evaluate@lenet", "ensemble", "export", "distil", "report"):
        assert stage in status, stage
    assert "prepare" not in status
