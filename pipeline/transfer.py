"""DVC stage `transfer@<name>`: one transfer-learning experiment of params.yaml, tracked in MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params
from inspectcnn.experiment import run_transfer_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="an entry of the transfer: section of params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED, help="the prepare stage's output")
    parser.add_argument("--out", type=Path, help="the entry's output folder (default models/<name>)")
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
