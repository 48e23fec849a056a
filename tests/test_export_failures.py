"""A default export format that fails cannot go unseen: the export stage fails under
``export.on_failure: fail`` (the default) after writing every other format and reports/export.json, goes on
under ``warn``; the end of `make run` (inspectcnn.run_summary) lists every format that did not come out."""

from __future__ import annotations

import json

import pytest

from inspectcnn.export import problems
from inspectcnn.run_summary import summary_lines

SYMPY = ("onnx_int8: conversion failed (ImportError: sympy is required for symbolic shape inference in "
         "quantization preprocessing.)")


def result(**overrides) -> dict:
    rows = {"keras": {"status": "ok"},
            "onnx": {"status": "ok", "within_tolerance": True, "size_bytes": 2**20, "latency_b1_ms": 1.0,
                     "accuracy": 0.9, "check": "max |delta p| 1e-7"},
            "onnx_int8": {"status": "failed", "error": SYMPY},
            "litert_int8": {"status": "ok", "within_tolerance": False, "size_bytes": 2**19, "latency_b1_ms": 1.0,
                            "accuracy": 0.8, "check": "int8 accuracy 0.80 vs 0.90 in Keras: MISSED"},
            "openvino": {"status": "skipped", "reason": "needs the Python package(s) openvino (not installed)"}}
    rows.update(overrides)
    return {"champion": "lenet", "threshold": 0.5, "test_count": 16, "formats": rows}


def test_problems_lists_failed_skipped_and_missed_formats_with_their_reasons():
    found = problems(result())
    assert found["failed"] == [SYMPY]
    assert found["skipped"] == ["openvino: needs the Python package(s) openvino (not installed)"]
    assert found["missed"] == ["litert_int8: int8 accuracy 0.80 vs 0.90 in Keras: MISSED"]
    assert problems({"formats": {"keras": {"status": "ok"}, "onnx": {"status": "ok", "within_tolerance": True}}}) == {
        "failed": [], "skipped": [], "missed": []}


@pytest.mark.parametrize("policy, code", [("fail", 1), ("warn", None)])
def test_the_export_stage_fails_on_a_failed_format_unless_told_to_warn(tmp_path, monkeypatch, capsys, policy, code):
    import inspectcnn.export
    from pipeline import export as stage

    params = tmp_path / "params.yaml"
    params.write_text(f"export: {{on_failure: {policy}}}\n")

    def fake_run(params, models, prepared, out, metrics, champion, run_record):
        metrics.write_text(json.dumps(result()))
        return result()

    monkeypatch.setattr(inspectcnn.export, "run", fake_run)
    argv = ["--params", str(params), "--metrics", str(tmp_path / "export.json"), "--out", str(tmp_path / "export")]
    if code is None:
        stage.main(argv)
    else:
        with pytest.raises(SystemExit) as exited:
            stage.main(argv)
        assert exited.value.code == code
    captured = capsys.readouterr()
    assert "onnx_int8       FAILED: onnx_int8: conversion failed (ImportError: sympy" in captured.out
    if policy == "fail":
        assert "export: error: 1 format(s) failed to export (export.on_failure: fail)" in captured.err
        assert "sympy is required" in captured.err and "export.on_failure: warn" in captured.err
    else:
        assert "error" not in captured.err
    assert json.loads((tmp_path / "export.json").read_text())["formats"]["onnx_int8"]["status"] == "failed"


def test_a_bad_on_failure_value_is_refused_naming_the_setting(tmp_path):
    from inspectcnn.config import load_params
    from inspectcnn.errors import UserError

    params = tmp_path / "params.yaml"
    params.write_text("export: {on_failure: ignore}\n")
    with pytest.raises((UserError, ValueError), match="on_failure"):
        load_params(params)


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
