"""DVC stages `evaluate@<entry>`, `evaluate_transfer@<entry>`, `evaluate_ensemble`: test-set metrics, curves
and cost of one model (threshold and TTA as the evaluate: section says, chosen on validation)."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import entry_parser, run_stage


def main(argv: list[str] | None = None) -> None:
    parser = entry_parser(__doc__, "models:, transfer: or ensemble", output="--model-dir")
    parser.add_argument("--val-predictions", type=Path, help="where the validation probabilities go "
                        "(default data/val_predictions/<name>.csv)")
    parser.add_argument("--candidates", type=Path, default=artifacts.VAL_PREDICTIONS,
                        help="every candidate's validation probabilities (an ensemble of one reuses its member's)")
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.evaluate import run

        params.check_entry(args.name)
        return run(args.name, params, args.prepared, args.model_dir or artifacts.model_folder(args.name).root,
                   args.val_predictions or artifacts.val_predictions(args.name), args.candidates)

    results = run_stage(f"evaluate@{args.name}", work, args.params)
    ci = results.get("ci95") or {}

    def shown(metric: str) -> str:
        interval = ci.get(metric)
        return f"{results[metric]:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")

    print(f"evaluate@{args.name}: test accuracy {shown('accuracy')}, ROC-AUC {shown('roc_auc')}, "
          f"F1 {shown('f1')} at threshold {results['threshold']:.3f} (95 % bootstrap intervals, TTA "
          f"{results['tta']})")


if __name__ == "__main__":
    main()
