"""DVC stage `register`: the champion (reports/champion.json) with its model card and export checks in the
MLflow Model Registry, and the edge student (reports/edge/) beside it; reports/model_card.md and
reports/registered.json. Nothing else registers."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "models", "prepared", "summary", "champion")
    parser.add_argument("--export", type=Path, default=artifacts.EXPORT, help="the exported files (inference.json)")
    parser.add_argument("--export-metrics", type=Path, default=artifacts.EXPORT_METRICS,
                        help="the export stage's checks")
    parser.add_argument("--export-run", type=Path, default=artifacts.EXPORT_RUN, help="their latencies")
    parser.add_argument("--card", type=Path, default=artifacts.MODEL_CARD)
    parser.add_argument("--edge", type=Path, default=artifacts.EDGE, help="the distilled student, registered beside it")
    parser.add_argument("--out", type=Path, default=artifacts.REGISTERED, help="what was registered")
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.registration import run

        return run(params, args.models, args.prepared, args.summary, args.champion, args.export,
                   (args.export_metrics, args.export_run), args.card, args.out, args.edge)

    record = run_stage("register", work, args.params)
    print(f"register: {record['champion']} -> " + (record["uri"] or f"not registered ({record['reason']})")
          + f"; model card {args.card}"
          + (f"; edge student -> {record['edge']['uri']}" if (record.get("edge") or {}).get("uri") else ""))


if __name__ == "__main__":
    main()
