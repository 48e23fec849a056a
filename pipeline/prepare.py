"""DVC stage `prepare`: list, check, split and store the configured data set."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, default=artifacts.PREPARED)
    parser.add_argument("--summary", type=Path, default=artifacts.PREPARE_SUMMARY)
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.data.prepare import run

        return run(params.data, args.out, args.summary, params.seed)

    summary = run_stage("prepare", work, args.params)
    counts = ", ".join(f"{split} {summary[split]['count']}" for split in ("train", "val", "test"))
    negative, positive = summary["classes"]
    print(f"prepare: {summary['total']} images ({counts}); {summary['bad_images']['count']} skipped; "
          f"label 0 = {negative!r} (negative), label 1 = {positive!r} (positive: what every probability, recall "
          "and F1 is about)")


if __name__ == "__main__":
    main()
