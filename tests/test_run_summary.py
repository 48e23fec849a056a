"""inspectcnn.run_summary (the end of `make run`): the champion, and every export format that did not come out."""

from __future__ import annotations

import json

from helpers import SYMPY
from helpers import export_result as result

from inspectcnn.run_summary import summary_lines


def test_the_end_of_make_run_names_every_format_that_did_not_come_out(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "export.json").write_text(json.dumps(result()))
    (reports / "summary.json").write_text(json.dumps({"champion": "lenet", "select_by": "roc_auc", "champion_val": 0.93,
                                                      "champion_roc_auc": 0.91, "champion_accuracy": 0.85}))
    text = "\n".join(summary_lines(reports))
    assert "Champion: lenet (chosen on validation roc_auc 0.930; test ROC-AUC 0.910, accuracy 0.850)" in text
    assert "Export: 2 format(s) ok in reports/export/ (onnx, litert_int8)" in text
    assert f"FAILED: {SYMPY}" in text
    assert "SKIPPED: openvino: needs the Python package(s) openvino" in text
    assert "OUTSIDE TOLERANCE: litert_int8" in text
    (reports / "export.json").unlink()
    assert "Export: NOT RUN" in "\n".join(summary_lines(reports))


def test_the_end_of_make_run_gives_the_edge_students_gap_to_its_teacher_and_its_latency_verdict(tmp_path):
    reports = tmp_path / "reports"
    edge = reports / "edge"
    edge.mkdir(parents=True)
    assert "Edge student: NOT RUN" in "\n".join(summary_lines(reports))
    versus = {"roc_auc": {"difference": -0.004, "ci95": [-0.011, 0.002]}}
    (edge / "eval.json").write_text(json.dumps({"roc_auc": 0.937, "vs_teacher": versus}))
    rows = {"keras": {"status": "ok"}, "onnx_int8": {"status": "ok", "precision": "int8", "within_tolerance": True},
            "onnx": {"status": "failed", "error": "onnx: the converter stopped"}}
    (edge / "export.json").write_text(json.dumps({"latency_target_ms": 10.0, "formats": rows}))
    (edge / "export_run.json").write_text(json.dumps({"formats": {"onnx_int8": {"latency_b1_ms": 12.5}}}))
    (reports / "registered.json").write_text(json.dumps({"uri": None, "edge": {"uri": "models:/m@edge"}}))
    text = "\n".join(summary_lines(reports))
    assert ("Edge student (one view): test ROC-AUC 0.937, minus its teacher -0.004 [-0.011, +0.002]; "
            "onnx_int8 12.5 ms batch 1 against 10 ms: MISSED; registered as models:/m@edge") in text
    assert "edge FAILED: onnx: the converter stopped" in text
