"""DVC stage `train@<entry>`: train one models entry of params.yaml, tracked in MLflow."""

from __future__ import annotations

from inspectcnn import paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import load_params
from inspectcnn.experiment import run_training


def main(argv: list[str] | None = None) -> None:
    parser = entry_parser(__doc__, "models")
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
