"""DVC stage `train@<entry>`: train one models entry of params.yaml, tracked in MLflow."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import Params, TrainConfig, load_params
from inspectcnn.data.prepare import read_meta
from inspectcnn.stages.tracked import tracked


def run(name: str, config: TrainConfig, params: Params, prepared_dir: Path, out_dir: Path) -> dict:
    """Train a models entry inside an MLflow run named ``train@<name>``; returns its metrics."""
    from inspectcnn.training import check_before_training, train

    meta = read_meta(prepared_dir)
    check_before_training(name, config, meta)  # fail before MLflow and TensorFlow start up
    return tracked(f"train@{name}", "train", name, config, params, meta, out_dir,
                   lambda run: train(name, config, prepared_dir, out_dir, seed=params.seed, run=run),
                   prepared=prepared_dir)


def main(argv: list[str] | None = None) -> None:
    args = entry_parser(__doc__, "models").parse_args(argv)

    def work():
        from inspectcnn.models import check_architectures

        params = load_params(args.params)
        check_architectures(params)
        return run(args.name, params.model(args.name), params, args.prepared, args.out or paths.model_dir(args.name))

    metrics = run_stage(f"train@{args.name}", work)
    print(f"train@{args.name}: best val AUC {metrics.get('best_val_auc', float('nan')):.4f} "
          f"after {metrics['epochs_run']} epochs, {metrics['train_images_per_s']:.1f} images/s")


if __name__ == "__main__":
    main()
