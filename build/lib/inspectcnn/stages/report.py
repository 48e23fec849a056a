"""DVC stage `report`: compare every evaluated model, register the champion, write reports/."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params


def run(params, models: Path, prepared: Path, summary: Path, out: Path, *, register: bool = True,
        export: Path | None = paths.EXPORT_METRICS, health: Path | None = paths.HEALTH) -> dict:
    """Compare every evaluated model under ``models``, register the champion, write ``out`` (with the model
    card and the export checks of ``export``, when the export stage ran); the summary."""
    from inspectcnn.report import build_report

    return build_report(params, models, prepared, summary, out, register=register, export_path=export,
                        health_path=health)


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
    parser.add_argument("--no-register", action="store_true", help="do not touch the MLflow Model Registry")
    args = parser.parse_args(argv)

    def work():
        params = load_params(args.params)
        return run(params, args.models, args.prepared, args.summary, args.out,
                   register=not args.no_register, export=args.export, health=args.health)

    summary = run_stage("report", work)
    print(f"report: champion {summary['champion']} ({summary['rank_by']} {summary['champion_' + summary['rank_by']]:.4f})"
          f" -> {args.out / 'report.html'}, {args.out / 'model_card.md'}"
          + (f"; registered as {summary['registered']}" if summary["registered"] else ""))


if __name__ == "__main__":
    main()
