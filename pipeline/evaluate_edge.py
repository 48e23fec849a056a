"""DVC stage `evaluate_edge`: the distilled student (reports/edge/) evaluated as every entry is (threshold on
validation, test metrics with intervals), compared with its teacher on the same test cells (paired bootstrap),
and exported in edge.formats under reports/edge/export, each file checked (parity, int8 accuracy, latency)."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "models", "prepared")
    parser.add_argument("--edge", type=Path, default=artifacts.EDGE, help=f"the student's folder (default {artifacts.EDGE})")
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.edge import run

        return run(params, args.models, args.prepared, args.edge)

    results = run_stage("evaluate_edge", work, args.params)
    ci, versus = results.get("ci95") or {}, results["vs_teacher"]
    lines = [f"evaluate_edge: test accuracy {results['accuracy']:.4f}, ROC-AUC {results['roc_auc']:.4f} "
             f"[{ci['roc_auc'][0]:.3f}, {ci['roc_auc'][1]:.3f}] at threshold {results['threshold']:.3f}; "
             f"minus teacher {versus['teacher']}: ROC-AUC {versus['roc_auc']['difference']:+.4f} "
             f"[{versus['roc_auc']['ci95'][0]:+.4f}, {versus['roc_auc']['ci95'][1]:+.4f}] (paired bootstrap)"]
    for fmt, row in results["export"].items():
        if fmt != "keras":
            lines.append(f"  {fmt:15s} " + (f"{row['latency_b1_ms']:7.2f} ms  accuracy {row['accuracy']:.4f}  "
                                            f"{row['check']}" if row["status"] == "ok"
                                            else f"{row['status'].upper()}: {row.get('error') or row.get('reason')}"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
