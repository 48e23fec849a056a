"""DVC stage `train@<entry>`: train one models entry of params.yaml from scratch, tracked in MLflow."""

from __future__ import annotations

from inspectcnn import artifacts
from inspectcnn.stage_runner import entry_parser, run_stage


def main(argv: list[str] | None = None) -> None:
    args = entry_parser(__doc__, "models").parse_args(argv)

    def work(params):
        from inspectcnn.training.tracked import run

        return run(args.name, params, args.prepared, args.out or artifacts.model_folder(args.name).root)

    metrics = run_stage(f"train@{args.name}", work, args.params)
    print(f"train@{args.name}: best val AUC {metrics.get('best_val_auc', float('nan')):.4f} "
          f"after {metrics['epochs_run']} epochs, {metrics['train_images_per_s']:.1f} images/s")


if __name__ == "__main__":
    main()
