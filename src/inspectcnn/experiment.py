"""Glue between a stage, training and MLflow: one MLflow run per stage execution."""

from __future__ import annotations

import logging
from pathlib import Path

from inspectcnn.config import Params, TrainConfig
from inspectcnn.data.prepare import read_meta

log = logging.getLogger(__name__)


def run_training(name: str, config: TrainConfig, params: Params, prepared_dir: Path, out_dir: Path) -> dict:
    """Train a models entry inside an MLflow run named ``train@<name>``; returns its metrics."""
    from inspectcnn import plots, tracking
    from inspectcnn.training import _read_history, check_before_training, train

    meta = read_meta(prepared_dir)
    check_before_training(name, config, meta)  # fail before MLflow and TensorFlow start up
    stage = f"train@{name}"
    run_params = {"seed": params.seed, "entry": name, **config.model_dump(),
                  "data": {"source": meta["source"], "stored_size": meta["image_size"],
                           "train_images": meta["splits"]["train"]["count"]}}
    tags = {**tracking.environment_tags(), "dvc_stage": stage, "kind": "train",
            "params_hash": tracking.params_hash(run_params)}
    with tracking.start_run(stage, experiment=params.mlflow.experiment, params=run_params, tags=tags,
                            required=params.mlflow.required) as run:
        result = train(name, config, prepared_dir, out_dir, seed=params.seed, run=run)
        run.log_metrics({k: v for k, v in result.metrics.items() if k.startswith(("best_", "train_", "wall_"))})
        figure = plots.history_figure(_read_history(result.history_path), title=stage)
        run.log_figure(figure, "history.png")
        plots.close(figure)
        run.log_artifact(result.history_path)
        import keras

        model = keras.saving.load_model(result.model_path, safe_mode=True)
        run.log_keras_model(model, tuple(model.input.shape[1:]))
        if run.active:
            result.metrics["mlflow_run_id"] = run.run_id
            from inspectcnn.dvc_outputs import write_metrics

            write_metrics(out_dir / "metrics.json", result.metrics)
    return result.metrics
