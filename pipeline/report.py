"""DVC stage `report`: compare every evaluated model (validation choice, test metrics with intervals, curves,
cost, Grad-CAM, data health) into reports/report.html, report.md, ranking.csv and summary.json."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "models", "prepared", "summary", "champion")
    parser.add_argument("--export", type=Path, default=artifacts.EXPORT_METRICS, help="the export stage's checks")
    parser.add_argument("--export-run", type=Path, default=artifacts.EXPORT_RUN, help="their latencies")
    parser.add_argument("--health", type=Path, default=artifacts.HEALTH, help="the health stage's label issues")
    parser.add_argument("--edge", type=Path, default=artifacts.EDGE, help="the edge student (evaluate_edge stage)")
    parser.add_argument("--out", type=Path, default=artifacts.REPORTS)
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.report import run

        return run(params, args.models, args.prepared, args.summary, args.champion, (args.export, args.export_run),
                   args.health, args.out, args.edge)

    summary = run_stage("report", work, args.params)
    print(f"report: champion {summary['champion']} (chosen on validation {summary['select_by']} "
          f"{summary['champion_val']:.4f}; test ROC-AUC {summary['champion_roc_auc'] or 0:.4f}, "
          f"accuracy {summary['champion_accuracy']:.4f}) -> {args.out / artifacts.REPORT_HTML.name}")
    edge = summary.get("edge")
    if edge:
        versus = edge["roc_auc_minus_teacher"]
        print(f"report: edge student test ROC-AUC {edge['roc_auc']:.4f}, minus its teacher {versus['difference']:+.4f} "
              f"[{versus['ci95'][0]:+.4f}, {versus['ci95'][1]:+.4f}]")


if __name__ == "__main__":
    main()
