"""DVC stage `evaluate@<entry>` / `evaluate_transfer@<entry>`: test-set metrics, curves and cost of one model."""

from __future__ import annotations

from inspectcnn import paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = entry_parser(__doc__, "models: or transfer", output="--model-dir")
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.evaluate_stage import evaluate_model

        params = load_params(args.params)
        params.check_entry(args.name)
        return evaluate_model(args.name, params, args.prepared, args.model_dir or paths.model_dir(args.name))

    results = run_stage(f"evaluate@{args.name}", work)
    print(f"evaluate@{args.name}: test accuracy {results['accuracy']:.4f}, ROC-AUC {results['roc_auc']:.4f}, "
          f"F1 {results['f1']:.4f} at threshold {results['threshold']:.3f}")


if __name__ == "__main__":
    main()
