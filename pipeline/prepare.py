"""DVC stage `prepare`: list, check, split and store the configured data set."""

from __future__ import annotations

import argparse

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=str(paths.PREPARED))
    parser.add_argument("--summary", default=str(paths.PREPARE_SUMMARY))
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.data.prepare import prepare

        params = load_params(args.params)
        return prepare(params.data, args.out, args.summary, params.seed)

    summary = run_stage("prepare", work)
    counts = ", ".join(f"{split} {summary[split]['count']}" for split in ("train", "val", "test"))
    negative, positive = summary["classes"]
    print(f"prepare: {summary['total']} images ({counts}); {summary['bad_images']['count']} skipped; "
          f"label 0 = {negative!r} (negative), label 1 = {positive!r} (positive: what every probability, recall "
          "and F1 is about)")


if __name__ == "__main__":
    main()
