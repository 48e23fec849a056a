"""Glue between a stage, training and MLflow: one MLflow run per stage execution."""

from __future__ import annotations

import logging
from pathlib import Path

from inspectcnn.config import Params, TrainConfig, TransferConfig
from inspectcnn.data.prepare import read_meta

log = logging.getLogger(__name__)


def run_training(name: str, config: TrainConfig, params: Params, prepared_dir: Path, out_dir: Path) -> dict:
    """Train a models entry inside an MLflow run named ``train@<name>``; returns its metrics."""
    from inspectcnn.training import check_before_training, train

    meta = read_meta(prepared_dir)
    check_before_training(name, config, meta)  # fail before MLflow and TensorFlow start up
    return _tracked(f"train@{name}", "train", name, config, params, meta, out_dir,
                    lambda run: train(name, config, prepared_dir, out_dir, seed=params.seed, run=run))


def run_transfer_stage(name: str, config: TransferConfig, params: Params, prepared_dir: Path, out_dir: Path) -> dict:
    """One transfer experiment inside an MLflow run named ``transfer@<name>``."""
    from inspectcnn.transfer import run_transfer
    from inspectcnn.tracking import params_hash
    from inspectcnn.training import CHECKPOINTS

    meta = read_meta(prepared_dir)
    work_dir = CHECKPOINTS / f"transfer-{name}-{params_hash({'seed': params.seed, **config.model_dump()})}"
    return _tracked(f"transfer@{name}", "transfer", name, config, params, meta, out_dir,
                    lambda run: run_transfer(name, config, prepared_dir, out_dir, seed=params.seed, run=run,
                                             work_dir=work_dir))


def _tracked(stage: str, kind: str, name: str, config, params: Params, meta: dict, out_dir: Path, work) -> dict:
    """Run ``work(run)`` inside an MLflow run; log its summary metrics, history plot and model."""
    from inspectcnn import plots, tracking
    from inspectcnn.training import read_history

    run_params = {"seed": params.seed, "entry": name, **config.model_dump(),
                  "data": {"source": meta["source"], "stored_size": meta["image_size"],
                           "train_images": meta["splits"]["train"]["count"]}}
    tags = {**tracking.environment_tags(), "dvc_stage": stage, "kind": kind,
            "params_hash": tracking.params_hash(run_params)}
    with tracking.start_run(stage, experiment=params.mlflow.experiment, params=run_params, tags=tags,
                            required=params.mlflow.required) as run:
        result = work(run)
        run.log_metrics({k: v for k, v in result.metrics.items() if isinstance(v, (int, float))
                         and not isinstance(v, bool) and k != "best_epoch"})
        figure = plots.history_figure(read_history(result.history_path), title=stage)
        run.log_figure(figure, "history.png")
        plots.close(figure)
        run.log_artifact(result.history_path)
        from inspectcnn.models.saving import load_model

        model = load_model(result.model_path)
        run.log_keras_model(model, tuple(model.input.shape[1:]))
        if run.active:
            result.metrics["mlflow_run_id"] = run.run_id
            from inspectcnn.dvc_outputs import write_split_metrics

            write_split_metrics(out_dir, result.metrics)
    return result.metrics
