"""The artifacts contract (inspectcnn.artifacts): dvc.yaml declares exactly the files it names for each stage,
no other module spells one of its file names, and its readers and writers keep run records apart."""

from __future__ import annotations

import ast

import pytest
import yaml

from helpers import REPO
from inspectcnn import artifacts

CODE = ("src/", "pipeline/")


def dvc_stages() -> dict[str, dict]:
    return {name: stage.get("do", stage) for name, stage in
            yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items()}


def declared_paths(entries) -> set[str]:
    """Paths of a deps/outs/metrics/plots list (each a string or a one-key mapping with its options)."""
    return {str(next(iter(e))) if isinstance(e, dict) else str(e) for e in entries or []}


def test_every_dvc_stage_is_in_the_contract_and_the_other_way_round():
    assert sorted(dvc_stages()) == sorted(artifacts.STAGE_FILES)


@pytest.mark.parametrize("stage", sorted(artifacts.STAGE_FILES))
def test_dvc_yaml_declares_what_the_contract_names(stage):
    body, contract = dvc_stages()[stage], artifacts.STAGE_FILES[stage]
    data_deps = {d for d in declared_paths(body.get("deps")) if not d.startswith(CODE)}
    assert data_deps == {p.as_posix() for p in contract.deps}, f"{stage}: data deps differ from artifacts.STAGE_FILES"
    written = declared_paths(body.get("outs")) | declared_paths(body.get("metrics")) | declared_paths(body.get("plots"))
    assert written == {p.as_posix() for p in contract.outs}, f"{stage}: outputs differ from artifacts.STAGE_FILES"


def test_the_contract_check_notices_an_undeclared_output():
    body = dict(dvc_stages()["report"])
    body["outs"] = [o for o in body["outs"] if "ranking.csv" not in str(o)]
    contract = {p.as_posix() for p in artifacts.STAGE_FILES["report"].outs}
    assert declared_paths(body["outs"]) != contract and "reports/ranking.csv" in contract


FILE_NAMES = {path.name for path in (
    artifacts.PREPARE_SUMMARY, artifacts.HEALTH, artifacts.CHAMPION, artifacts.EXPORT_METRICS, artifacts.REPORT_HTML,
    artifacts.REPORT_MD, artifacts.RANKING, artifacts.SUMMARY, artifacts.MODEL_CARD, artifacts.REGISTERED,
    *artifacts.model_folder("x").training_files, *artifacts.model_folder("x").evaluation_files,
    artifacts.model_folder("x").val_predictions)} | {artifacts.PREPARED_META, artifacts.PREPARED_MANIFEST,
                                                      artifacts.INFERENCE_SPEC}


def spelled_names(path) -> list[str]:
    """Contract file names written as a string literal (or a literal part of an f-string) in ``path``;
    docstrings and comments may name them."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if any(text == name or text.endswith(("/" + name, "." + name)) for name in FILE_NAMES):
                found.append(text)
    return found


def test_no_module_but_the_contract_spells_a_pipeline_file_name():
    modules = [*sorted((REPO / "src" / "inspectcnn").rglob("*.py")), *sorted((REPO / "pipeline").glob("*.py"))]
    spelled = {str(p.relative_to(REPO)): names for p in modules
               if p.name != "artifacts.py" and (names := spelled_names(p))}
    assert not spelled, f"file names of inspectcnn.artifacts spelled elsewhere: {spelled}"


def test_the_spelling_check_finds_a_literal(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""Reads eval.json."""\nfrom pathlib import Path\nPath("models") / "lenet" / "eval.json"\n')
    assert spelled_names(planted) == ["eval.json"]


def test_a_model_folder_keeps_the_run_record_apart_from_the_reproducible_metrics(tmp_path):
    folder = artifacts.ModelFolder(tmp_path / "lenet")
    folder.write_training({"best_val_auc": 0.91, "epochs_run": 3, "wall_time_s": 12.5, "mlflow_run_id": "abc"})
    assert artifacts.read_json(folder.metrics) == {"best_val_auc": 0.91, "epochs_run": 3}
    assert artifacts.read_json(folder.run) == {"wall_time_s": 12.5, "mlflow_run_id": "abc"}
    assert folder.read_training() == {"best_val_auc": 0.91, "epochs_run": 3, "wall_time_s": 12.5, "mlflow_run_id": "abc"}
    folder.run.unlink()
    assert folder.read_training() == {"best_val_auc": 0.91, "epochs_run": 3}


def test_an_evaluation_read_puts_the_run_record_under_cost(tmp_path):
    folder = artifacts.ModelFolder(tmp_path / "lenet")
    with pytest.raises(FileNotFoundError, match="run the evaluate stage of lenet first"):
        folder.read_evaluation()
    artifacts.write_json(folder.evaluation, {"accuracy": 0.9, "cost": {"macs": 10}})
    artifacts.write_json(folder.evaluation_run, {"latency_batch1": {"median_ms": 1.5}})
    assert folder.read_evaluation() == {"accuracy": 0.9, "cost": {"macs": 10}}
    assert folder.read_evaluation(with_run=True)["cost"] == {"macs": 10, "latency_batch1": {"median_ms": 1.5}}


def test_writers_are_atomic_and_leave_no_temporary_file(tmp_path):
    artifacts.write_table(tmp_path / "t.csv", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    assert artifacts.read_table(tmp_path / "t.csv") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    artifacts.write_text(tmp_path / "deep" / "page.md", "# title\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "page.md", "t.csv"]


def test_the_export_record_keeps_latencies_in_its_run_file(tmp_path):
    result = {"champion": "lenet", "formats": {
        "keras": {"status": "ok", "accuracy": 0.9, "latency_b1_ms": 3.2},
        "onnx": {"status": "ok", "accuracy": 0.9, "parity_max": 1e-7, "latency_b1_ms": 1.1, "size_bytes": 2048},
        "litert": {"status": "failed", "error": "no converter"}}}
    checks, run = tmp_path / "export.json", tmp_path / "export_run.json"
    artifacts.write_export(result, checks, run)
    assert "latency" not in checks.read_text() and artifacts.read_json(checks)["formats"]["onnx"]["parity_max"] == 1e-7
    assert artifacts.read_json(run) == {"formats": {"keras": {"latency_b1_ms": 3.2},
                                                    "onnx": {"latency_b1_ms": 1.1, "size_bytes": 2048},
                                                    "litert": {}}}
    assert artifacts.read_export(checks, run) == result
    assert "latency_b1_ms" not in artifacts.read_export(checks, None)["formats"]["onnx"]
    assert artifacts.read_export(tmp_path / "missing.json", run) is None
