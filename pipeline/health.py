"""DVC stage `health`: label-issue candidates in the train and val splits (cleanlab on out-of-fold
probabilities); data/health.json, read by the report. Near-duplicates and per-class statistics are in
prepare's summary."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "prepared")
    parser.add_argument("--out", type=Path, default=artifacts.HEALTH)
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.health import run

        return run(params, args.prepared, args.out)

    result = run_stage("health", work, args.params)
    issues = result["label_issues"]
    print("health: label issues off (health.label_issues: false)" if issues is None else
          f"health: {issues['candidates']} label-issue candidates among {issues['images']} train+val images "
          f"({', '.join(f'{n} given {c}' for c, n in issues['by_given_class'].items())}); out-of-fold ROC-AUC "
          f"{issues['out_of_fold_roc_auc']:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
