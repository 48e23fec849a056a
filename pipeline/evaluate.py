"""DVC stage `evaluate@<entry>` / `evaluate_transfer@<entry>`: test-set metrics, curves and cost of one model."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="a models: or transfer: entry of params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED, help="the prepare stage's output")
    parser.add_argument("--model-dir", type=Path, help="the entry's folder: model.keras in, eval files out "
                                                        "(default models/<name>)")
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
