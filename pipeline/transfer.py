"""DVC stage `transfer@<name>`: one transfer-learning experiment of params.yaml, tracked in MLflow."""

from __future__ import annotations

from inspectcnn import paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import load_params
from inspectcnn.experiment import run_transfer_stage


def main(argv: list[str] | None = None) -> None:
    parser = entry_parser(__doc__, "transfer")
    args = parser.parse_args(argv)

    def work():
        params = load_params(args.params)
        config = params.transfer_config(args.name)
        return run_transfer_stage(args.name, config, params, args.prepared, args.out or paths.model_dir(args.name))

    metrics = run_stage(f"transfer@{args.name}", work)
    print(f"transfer@{args.name}: best val AUC {metrics['best_val_auc']:.4f} ({metrics['best_phase']} phase), "
          f"{metrics['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
