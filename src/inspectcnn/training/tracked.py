"""What from-scratch training and transfer learning share around the work: one MLflow run (the stage's
standard run, :func:`inspectcnn.tracking.stage_run`) with the summary metrics, history plot and model."""

from __future__ import annotations

from pathlib import Path

from inspectcnn.config import Params


def tracked(stage: str, kind: str, name: str, config, params: Params, meta: dict, out_dir: Path, work,
            prepared: Path | None = None) -> dict:
    """Run ``work(run)`` inside the stage's MLflow run; log its summary metrics, history plot and model."""
    from inspectcnn import plots, tracking
    from inspectcnn.artifacts import ModelFolder
    from inspectcnn.models.saving import load_model
    from inspectcnn.training.checkpoints import read_history

    run_params = {"seed": params.seed, "backend": params.backend, "entry": name, **config.model_dump(),
                  "data": {"source": meta["source"], "stored_size": meta["image_size"],
                           "train_images": meta["splits"]["train"]["count"],
                           "negative_class": meta["classes"][0], "positive_class": meta["classes"][1]}}
    from inspectcnn.training.runtime import join_cluster, leave_cluster

    join_cluster(config.strategy)  # a multi-worker JAX training connects before the run's device tags are read
    with tracking.stage_run(stage, kind, params, run_params,
                            dataset=(prepared, "training") if prepared is not None else None) as run:
        result = work(run)
        leave_cluster()
        if not run.active:  # MLflow optional and unreachable, or a worker other than the chief
            return result.metrics
        run.log_metrics({k: v for k, v in result.metrics.items() if isinstance(v, (int, float))
                         and not isinstance(v, bool) and k != "best_epoch"})
        figure = plots.history_figure(read_history(result.history_path), title=stage)
        run.log_figure(figure, "history.png")
        plots.close(figure)
        run.log_artifact(result.history_path)
        model = load_model(result.model_path)
        run.log_keras_model(model, tuple(model.input.shape[1:]))
        result.metrics["mlflow_run_id"] = run.run_id
        ModelFolder(out_dir).write_training(result.metrics)
    return result.metrics


def run(name: str, params: Params, prepared_dir: Path, out_dir: Path) -> dict:
    """The `train@<name>` stage: check, then train a models entry inside its MLflow run; its metrics."""
    from inspectcnn.data.store import read_meta
    from inspectcnn.models import check_architectures
    from inspectcnn.training.scratch import check_before_training, train

    check_architectures(params)
    config = params.model(name)
    meta = read_meta(prepared_dir)
    check_before_training(name, config, meta)  # fail before MLflow and TensorFlow start up
    return tracked(f"train@{name}", "train", name, config, params, meta, out_dir,
                   lambda run: train(name, config, prepared_dir, out_dir, seed=params.seed, run=run),
                   prepared=prepared_dir)
