"""pipeline.export (the `export` stage's command): a default format that fails cannot go unseen. The stage fails
under ``export.on_failure: fail`` (the default) after writing every other format and reports/export.json, and
goes on under ``warn``; inspectcnn.export.problems names every format that did not come out."""

from __future__ import annotations

import json

import pytest
from helpers import SYMPY
from helpers import export_result as result

from inspectcnn.export import problems


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
