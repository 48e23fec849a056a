"""DVC stage `train@<entry>`: train one models entry of params.yaml, tracked in MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params
from inspectcnn.experiment import run_training


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", "--model", dest="name", required=True,
                        help="an entry of the models: section of params.yaml (--model: the old spelling)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED, help="the prepare stage's output")
    parser.add_argument("--out", type=Path, help="the entry's output folder (default models/<name>)")
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.models import check_architectures

        params = load_params(args.params)
        check_architectures(params)
        config = params.model(args.name)
        return run_training(args.name, config, params, args.prepared, args.out or paths.model_dir(args.name))

    metrics = run_stage(f"train@{args.name}", work)
    print(f"train@{args.name}: best val AUC {metrics.get('best_val_auc', float('nan')):.4f} "
          f"after {metrics['epochs_run']} epochs, {metrics['train_images_per_s']:.1f} images/s")


if __name__ == "__main__":
    main()
