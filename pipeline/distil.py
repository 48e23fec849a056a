"""DVC stage `distil`: the champion as served (reports/champion.json, with its test-time augmentation) distilled
into a single-view student with keras.distillation.Distiller (params.yaml's edge: section), into
reports/edge/ (model.keras, metrics.json, run.json, history.csv). Reads the training and validation splits only."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "models", "prepared", "champion")
    parser.add_argument("--out", type=Path, default=artifacts.EDGE, help=f"the student's folder (default {artifacts.EDGE})")
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.distil import run

        return run(params, args.models, args.prepared, args.champion, args.out)

    metrics = run_stage("distil", work, args.params)
    print(f"distil: {metrics['teacher']} (TTA {metrics['teacher_tta']}) -> one view of {metrics['student']}: "
          f"validation ROC-AUC {metrics['start_val_auc']:.4f} at the start, {metrics['best_val_auc']:.4f} kept "
          f"({metrics['kept']}) in {args.out}")


if __name__ == "__main__":
    main()
