"""DVC stage `champion`: the model to export, register and describe, chosen on validation (report.select_by)
into reports/champion.json; every later stage reads that record."""

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
    parser.add_argument("--out", type=Path, default=paths.CHAMPION)
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.champion import champion_stage

        return champion_stage(load_params(args.params), args.models, args.out)

    record = run_stage("champion", work)
    second = record.get("runner_up")
    print(f"champion: {record['champion']} (validation {record['select_by']} {record['value']:.4f}"
          + (f", ahead of {second['model']} {second['value']:.4f}" if second else "") + f") -> {args.out}")


if __name__ == "__main__":
    main()
