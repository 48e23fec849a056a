"""DVC stage `report`: compare every evaluated model, register the champion (reports/champion.json) with its
model card, write reports/."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", type=Path, default=paths.MODELS, help="every entry's folder")
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED)
    parser.add_argument("--summary", type=Path, default=paths.PREPARE_SUMMARY, help="the prepare stage's summary")
    parser.add_argument("--out", type=Path, default=paths.REPORTS)
    parser.add_argument("--export", type=Path, default=paths.EXPORT_METRICS,
                        help="the export stage's checks (reports/export.json; its folder holds inference.json)")
    parser.add_argument("--health", type=Path, default=paths.HEALTH, help="the health stage's label issues")
    parser.add_argument("--champion", type=Path, default=paths.CHAMPION, help="the champion stage's record")
    parser.add_argument("--no-register", action="store_true", help="do not touch the MLflow Model Registry")
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.report import build_report

        params = load_params(args.params)
        return build_report(params, args.models, args.prepared, args.summary, args.out,
                            register=not args.no_register, export_path=args.export, health_path=args.health,
                            champion_path=args.champion)

    summary = run_stage("report", work)
    print(f"report: champion {summary['champion']} (chosen on validation {summary['select_by']} "
          f"{summary['champion_val']:.4f}; test ROC-AUC {summary['champion_roc_auc'] or 0:.4f}, "
          f"accuracy {summary['champion_accuracy']:.4f})"
          f" -> {args.out / 'report.html'}, {args.out / 'model_card.md'}"
          + (f"; registered as {summary['registered']}" if summary["registered"] else ""))


if __name__ == "__main__":
    main()
