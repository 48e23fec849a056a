"""DVC stage `transfer@<entry>`: one transfer-learning entry of params.yaml, tracked in MLflow."""

from __future__ import annotations

from inspectcnn import artifacts
from inspectcnn.stage_runner import entry_parser, run_stage


def main(argv: list[str] | None = None) -> None:
    args = entry_parser(__doc__, "transfer").parse_args(argv)

    def work(params):
        from inspectcnn.transfer.phases import run

        return run(args.name, params, args.prepared, args.out or artifacts.model_folder(args.name).root)

    metrics = run_stage(f"transfer@{args.name}", work, args.params)
    print(f"transfer@{args.name}: best val AUC {metrics['best_val_auc']:.4f} ({metrics['best_phase']} phase), "
          f"{metrics['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
