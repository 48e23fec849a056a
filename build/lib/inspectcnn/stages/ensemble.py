"""DVC stage `ensemble`: combine the candidates of ``ensemble:`` into models/ensemble/, chosen on validation."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import ENSEMBLE, Params, load_params


def run(params: Params, models_dir: Path, out_dir: Path, val_predictions: Path = paths.VAL_PREDICTIONS) -> dict:
    """Select members on validation, build and save the ensemble model; its metrics (validation only)."""
    from inspectcnn import ensemble, tracking
    from inspectcnn.dvc_outputs import write_split_metrics
    from inspectcnn.models.saving import load_model

    config = params.ensemble
    started = time.perf_counter()
    _, labels, probabilities = ensemble.read_val_predictions(val_predictions, params.ensemble_candidates())
    weights = ensemble.select(labels, probabilities, config)
    members = {name: load_model(models_dir / name / "model.keras") for name in weights}
    model = ensemble.build(members, weights)
    alone = {name: round(float(ensemble.SCORES[config.metric](labels, p)), 4) for name, p in probabilities.items()}
    metrics = {
        "members": {name: round(w, 4) for name, w in weights.items()},
        f"val_{config.metric}_members": alone,
        f"val_{config.metric}": round(ensemble.score_of(labels, probabilities, weights, config.metric), 4),
        "selection": config.selection,
        "params": int(model.count_params()),
        "image_size": int(model.input.shape[1]),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    run_params = {"seed": params.seed, "backend": params.backend, "entry": ENSEMBLE, **config.model_dump(), "tta": params.evaluate.tta}
    tags = {**tracking.environment_tags(), "dvc_stage": ENSEMBLE, "kind": "ensemble",
            "params_hash": tracking.params_hash(run_params)}
    with tracking.start_run(ENSEMBLE, experiment=params.mlflow.experiment, params=run_params, tags=tags,
                            required=params.mlflow.required) as run:
        tmp = out_dir / ".model.keras.tmp.keras"
        model.save(tmp)
        tmp.replace(out_dir / "model.keras")
        run.log_metrics({f"val_{config.metric}": metrics[f"val_{config.metric}"],
                         **{f"weight_{k}": v for k, v in weights.items()}})
        run.log_keras_model(model, tuple(int(d) for d in model.input.shape[1:]))
        metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
        if run.active:
            metrics["mlflow_run_id"] = run.run_id
        write_split_metrics(out_dir, metrics)
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", type=Path, default=paths.MODELS, help="every entry's folder")
    parser.add_argument("--val-predictions", type=Path, default=paths.VAL_PREDICTIONS,
                        help="the evaluate stages' validation probabilities, one <entry>.csv each")
    parser.add_argument("--out", type=Path, help=f"default models/{ENSEMBLE}")
    args = parser.parse_args(argv)

    def work():
        params = load_params(args.params)
        return run(params, args.models, args.out or args.models / ENSEMBLE, args.val_predictions)

    metrics = run_stage(ENSEMBLE, work)
    print(f"ensemble: members {json.dumps(metrics['members'])}, validation {metrics['selection']} "
          f"{[k for k in metrics if k.startswith('val_') and not k.endswith('_members')][0]} "
          f"{metrics[[k for k in metrics if k.startswith('val_') and not k.endswith('_members')][0]]:.4f}")


if __name__ == "__main__":
    main()
