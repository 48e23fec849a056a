"""DVC stage `health`: label-issue candidates in the train and val splits (cleanlab on out-of-fold
probabilities); data/health.json, read by the report. Near-duplicates and per-class statistics are in
prepare's summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED)
    parser.add_argument("--out", type=Path, default=paths.HEALTH)
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.health import health_stage

        return health_stage(load_params(args.params), args.prepared, args.out)

    result = run_stage("health", work)
    issues = result["label_issues"]
    print("health: label issues off (health.label_issues: false)" if issues is None else
          f"health: {issues['candidates']} label-issue candidates among {issues['images']} train+val images "
          f"({', '.join(f'{n} given {c}' for c, n in issues['by_given_class'].items())}); out-of-fold ROC-AUC "
          f"{issues['out_of_fold_roc_auc']:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
