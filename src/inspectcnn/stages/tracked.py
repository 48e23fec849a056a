"""What the train and transfer stages share: one MLflow run around the work, with its summary metrics,
history plot and model logged."""

from __future__ import annotations

from pathlib import Path

from inspectcnn.config import Params



def tracked(stage: str, kind: str, name: str, config, params: Params, meta: dict, out_dir: Path, work,
            prepared: Path | None = None) -> dict:
    """Run ``work(run)`` inside an MLflow run; log its summary metrics, history plot and model."""
    from inspectcnn import plots, tracking
    from inspectcnn.training import read_history

    run_params = {"seed": params.seed, "backend": params.backend, "entry": name, **config.model_dump(),
                  "data": {"source": meta["source"], "stored_size": meta["image_size"],
                           "train_images": meta["splits"]["train"]["count"],
                           "negative_class": meta["classes"][0], "positive_class": meta["classes"][1]}}
    tags = {**tracking.environment_tags(), "dvc_stage": stage, "kind": kind,
            "params_hash": tracking.params_hash(run_params)}
    with tracking.start_run(stage, experiment=params.mlflow.experiment, params=run_params, tags=tags,
                            required=params.mlflow.required,
                            dataset=(prepared, "training") if prepared is not None else None) as run:
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
