"""DVC stage `report`: compare every evaluated model, register the champion, write reports/."""

from __future__ import annotations

import argparse

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--no-register", action="store_true", help="do not touch the MLflow Model Registry")
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.report import build_report

        params = load_params(args.params)
        return build_report(params, paths.MODELS, paths.PREPARED, paths.PREPARE_SUMMARY, paths.REPORTS,
                            register=not args.no_register)

    summary = run_stage("report", work)
    print(f"report: champion {summary['champion']} ({summary['rank_by']} {summary['champion_' + summary['rank_by']]:.4f})"
          f" -> reports/report.html")


if __name__ == "__main__":
    main()
