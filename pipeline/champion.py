"""DVC stage `champion`: the model to export, register and describe, chosen on validation (report.select_by)
into reports/champion.json; every later stage reads that record."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "models")
    parser.add_argument("--out", type=Path, default=artifacts.CHAMPION)
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.champion import run

        return run(params, args.models, args.out)

    record = run_stage("champion", work, args.params)
    second = record.get("runner_up")
    print(f"champion: {record['champion']} (validation {record['select_by']} {record['value']:.4f}"
          + (f", ahead of {second['model']} {second['value']:.4f}" if second else "") + f") -> {args.out}")


if __name__ == "__main__":
    main()
