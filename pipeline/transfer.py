"""DVC stage `transfer@<entry>`: one transfer-learning entry of params.yaml, tracked in MLflow."""

from __future__ import annotations

from inspectcnn import paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    args = entry_parser(__doc__, "transfer").parse_args(argv)

    def work():
        from inspectcnn.transfer import transfer_entry

        params = load_params(args.params)
        return transfer_entry(args.name, params, args.prepared, args.out or paths.model_dir(args.name))

    metrics = run_stage(f"transfer@{args.name}", work)
    print(f"transfer@{args.name}: best val AUC {metrics['best_val_auc']:.4f} ({metrics['best_phase']} phase), "
          f"{metrics['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
