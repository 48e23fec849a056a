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
