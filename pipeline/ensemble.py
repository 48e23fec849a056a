"""DVC stage `ensemble`: combine the candidates of ``ensemble:`` into models/ensemble/, chosen on validation."""

from __future__ import annotations

import json
from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser
from inspectcnn.config import ENSEMBLE


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "models")
    parser.add_argument("--val-predictions", type=Path, default=artifacts.VAL_PREDICTIONS,
                        help="the evaluate stages' validation probabilities, one <entry>.csv each")
    parser.add_argument("--out", type=Path, help=f"default models/{ENSEMBLE}")
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.ensemble import run

        return run(params, args.models, args.out or args.models / ENSEMBLE, args.val_predictions)

    metrics = run_stage(ENSEMBLE, work, args.params)
    chosen = next(k for k in metrics if k.startswith("val_") and not k.endswith("_members"))
    print(f"ensemble: members {json.dumps(metrics['members'])}, validation {metrics['selection']} "
          f"{chosen} {metrics[chosen]:.4f}")


if __name__ == "__main__":
    main()
