"""DVC stages `evaluate@<entry>`, `evaluate_transfer@<entry>`, `evaluate_ensemble`: test-set metrics, curves
and cost of one model (threshold and TTA as the evaluate: section says, chosen on validation)."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = entry_parser(__doc__, "models:, transfer: or ensemble", output="--model-dir")
    parser.add_argument("--val-predictions", type=Path, help="where the validation probabilities go "
                        "(default data/val_predictions/<name>.csv)")
    args = parser.parse_args(argv)

    def work():
        params = load_params(args.params)
        params.check_entry(args.name)
        from inspectcnn.evaluate_entry import evaluate_entry

        return evaluate_entry(args.name, params, args.prepared, args.model_dir or paths.model_dir(args.name),
                              args.val_predictions)

    results = run_stage(f"evaluate@{args.name}", work)
    ci = results.get("ci95") or {}

    def shown(metric: str) -> str:
        interval = ci.get(metric)
        return f"{results[metric]:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")

    print(f"evaluate@{args.name}: test accuracy {shown('accuracy')}, ROC-AUC {shown('roc_auc')}, "
          f"F1 {shown('f1')} at threshold {results['threshold']:.3f} (95 % bootstrap intervals, TTA "
          f"{results['tta']})")


if __name__ == "__main__":
    main()
