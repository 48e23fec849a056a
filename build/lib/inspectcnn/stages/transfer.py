"""DVC stage `transfer@<name>`: one transfer-learning experiment of params.yaml, tracked in MLflow."""

from __future__ import annotations

from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import Params, TransferConfig, load_params
from inspectcnn.data.prepare import read_meta
from inspectcnn.stages.tracked import tracked


def run(name: str, config: TransferConfig, params: Params, prepared_dir: Path, out_dir: Path) -> dict:
    """One transfer experiment inside an MLflow run named ``transfer@<name>``; returns its metrics."""
    from inspectcnn.training import work_dir as work_folder
    from inspectcnn.transfer import run_transfer

    meta = read_meta(prepared_dir)
    work_dir = work_folder(f"transfer-{name}", params.seed, config)
    return tracked(f"transfer@{name}", "transfer", name, config, params, meta, out_dir,
                   lambda run: run_transfer(name, config, prepared_dir, out_dir, seed=params.seed, run=run,
                                            work_dir=work_dir),
                   prepared=prepared_dir)


def main(argv: list[str] | None = None) -> None:
    args = entry_parser(__doc__, "transfer").parse_args(argv)

    def work():
        params = load_params(args.params)
        config = params.transfer_config(args.name)
        return run(args.name, config, params, args.prepared, args.out or paths.model_dir(args.name))

    metrics = run_stage(f"transfer@{args.name}", work)
    print(f"transfer@{args.name}: best val AUC {metrics['best_val_auc']:.4f} ({metrics['best_phase']} phase), "
          f"{metrics['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
