"""What `make run` prints at its end: the champion, where to look, and every export format that did not come
out (failed, skipped, outside its tolerance), so that a lost deployment format cannot scroll by unseen.

``python -m inspectcnn.run_summary [--reports reports]``; exit status 0 (the pipeline itself already failed
loudly where ``export.on_failure: fail`` says so).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inspectcnn import artifacts


def summary_lines(reports: Path) -> list[str]:
    from inspectcnn.export import problems

    lines = []
    summary_file, export_file = reports / artifacts.SUMMARY.name, reports / artifacts.EXPORT_METRICS.name
    registered_file = reports / artifacts.REGISTERED.name
    registered = artifacts.read_json(registered_file).get("uri") if registered_file.is_file() else None
    if summary_file.is_file():
        summary = artifacts.read_json(summary_file)
        rule = summary.get("select_by", "")
        lines.append(f"Champion: {summary.get('champion')} (chosen on validation {rule} {summary.get('champion_val', 0):.3f}; "
                     f"test ROC-AUC {summary.get('champion_roc_auc') or 0:.3f}, accuracy {summary.get('champion_accuracy', 0):.3f})"
                     + (f", registered as {registered}" if registered else ", not registered"))
    if not export_file.is_file():
        lines.append("Export: NOT RUN (reports/export.json is missing): dvc repro export")
    else:
        result = artifacts.read_json(export_file)
        found = problems(result)
        ok = [f for f, row in result.get("formats", {}).items() if f != "keras" and row.get("status") == "ok"]
        lines.append(f"Export: {len(ok)} format(s) ok in reports/export/ ({', '.join(ok) or 'none'})")
        for kind, title in (("failed", "FAILED"), ("skipped", "SKIPPED"), ("missed", "OUTSIDE TOLERANCE")):
            lines.extend(f"  {title}: {line}" for line in found[kind])
    lines += edge_lines(reports)
    lines += ["", "Look at: reports/report.html (comparison, error gallery, data health), reports/model_card.md,",
              "reports/export/ (the champion as ONNX / OpenVINO / LiteRT), reports/edge/export/ (the edge student), make ui (MLflow runs), "
              ".venv/bin/dvc metrics show (one row per model)."]
    return lines


def edge_lines(reports: Path) -> list[str]:
    """The edge student: its test ROC-AUC against its teacher's, the int8 file's latency against the budget."""
    from inspectcnn.export import latency_verdict, problems

    edge = reports / artifacts.EDGE.name
    evaluation = edge / artifacts.ModelFolder(edge).evaluation.name
    if not evaluation.is_file():
        return ["Edge student: NOT RUN (reports/edge/eval.json is missing): dvc repro evaluate_edge"]
    result = artifacts.read_json(evaluation)
    versus = result["vs_teacher"]["roc_auc"]
    export = artifacts.read_export(edge / artifacts.EDGE_EXPORT_METRICS.name, edge / artifacts.EDGE_EXPORT_RUN.name)
    verdict = latency_verdict(export) if export else None
    registered_file = reports / artifacts.REGISTERED.name
    uri = ((artifacts.read_json(registered_file).get("edge") or {}).get("uri") if registered_file.is_file() else None)
    lines = [f"Edge student (one view): test ROC-AUC {result['roc_auc'] or 0:.3f}, minus its teacher "
             f"{versus['difference']:+.3f} [{versus['ci95'][0]:+.3f}, {versus['ci95'][1]:+.3f}]; "
             + (f"{verdict['format']} {verdict['ms']:.1f} ms batch 1 against {verdict['target_ms']:g} ms: "
                + ("met" if verdict["met"] else "MISSED") if verdict else "no checked onnx_int8 latency")
             + (f"; registered as {uri}" if uri else "")]
    found = problems(export)
    for kind, title in (("failed", "FAILED"), ("skipped", "SKIPPED"), ("missed", "OUTSIDE TOLERANCE")):
        lines.extend(f"  edge {title}: {line}" for line in found[kind])
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=Path, default=artifacts.REPORTS)
    args = parser.parse_args(argv)
    print("\n".join(["", "Done.", *summary_lines(args.reports)]))


if __name__ == "__main__":
    main()
