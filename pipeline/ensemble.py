"""DVC stage `ensemble`: combine the candidates of ``ensemble:`` into models/ensemble/, chosen on validation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import ENSEMBLE, load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", type=Path, default=paths.MODELS, help="every entry's folder")
    parser.add_argument("--val-predictions", type=Path, default=paths.VAL_PREDICTIONS,
                        help="the evaluate stages' validation probabilities, one <entry>.csv each")
    parser.add_argument("--out", type=Path, help=f"default models/{ENSEMBLE}")
    args = parser.parse_args(argv)

    def work():
        from inspectcnn.ensemble import ensemble_entry

        params = load_params(args.params)
        return ensemble_entry(params, args.models, args.out or args.models / ENSEMBLE, args.val_predictions)

    metrics = run_stage(ENSEMBLE, work)
    print(f"ensemble: members {json.dumps(metrics['members'])}, validation {metrics['selection']} "
          f"{[k for k in metrics if k.startswith('val_') and not k.endswith('_members')][0]} "
          f"{metrics[[k for k in metrics if k.startswith('val_') and not k.endswith('_members')][0]]:.4f}")


if __name__ == "__main__":
    main()
