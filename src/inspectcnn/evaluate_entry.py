"""Evaluating one entry (the `evaluate@<entry>` stages): validation threshold, test metrics with intervals,
curves, per-group and per-level results, cost and latency; one linked MLflow run."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from inspectcnn import dihedral, evaluation, paths
from inspectcnn.config import Params
from inspectcnn.data import store
from inspectcnn.data.dataset import load_split
from inspectcnn.dvc_outputs import read_split_metrics, write_metrics, write_table
from inspectcnn.models.saving import load_model
from inspectcnn.models.summary import count_macs

log = logging.getLogger(__name__)


EVALUATION_FILES = ("eval.json", "scores.json", "eval_run.json", "roc.csv", "pr.csv", "predictions.csv")


def single_member(name: str, params: Params, model_dir: Path) -> str | None:
    """The member of an ensemble of one (that model itself, nothing to re-evaluate), else None."""
    if name not in params.ensembles():
        return None
    members = read_split_metrics(model_dir).get("members") or {}
    return next(iter(members)) if len(members) == 1 else None


def reuse_member(member: str, model_dir: Path, val_path: Path, member_val: Path) -> dict:
    """An ensemble of one member is that member: its evaluation files, copied (marked ``same_as``)."""
    import shutil

    source = model_dir.parent / member
    missing = [f for f in EVALUATION_FILES if not (source / f).is_file()] + ([] if member_val.is_file() else [member_val])
    if missing:
        raise FileNotFoundError(f"the ensemble is {member} alone, whose evaluation is incomplete (missing "
                                f"{', '.join(map(str, missing))}): run evaluate for {member} first")
    for file in EVALUATION_FILES:
        shutil.copyfile(source / file, model_dir / file)
    val_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(member_val, val_path)
    from inspectcnn.dvc_outputs import read_metrics

    results = {**read_metrics(model_dir / "eval.json"), "same_as": member}
    write_metrics(model_dir / "eval.json", results)
    log.info("%s: one member (%s): its evaluation reused, nothing re-evaluated", model_dir.name, member)
    return results


def evaluate_entry(name: str, params: Params, prepared_dir: Path, model_dir: Path,
                   val_predictions: Path | None = None) -> dict:
    """Evaluate models/<name>/model.keras (wrapped with the configured test-time augmentation) on the test
    split; the threshold is chosen on validation. Writes eval.json, val_predictions.csv and plot tables."""
    model_path = model_dir / "model.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: run its train/transfer stage first")
    val_path = val_predictions or paths.VAL_PREDICTIONS / f"{name}.csv"
    member = single_member(name, params, model_dir)
    if member is not None:
        return reuse_member(member, model_dir, val_path, paths.VAL_PREDICTIONS / f"{member}.csv")
    config = params.evaluate
    trained = load_model(model_path)
    model = dihedral.tta_model(trained, config.tta)  # what is evaluated is what is registered and served
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    load = dict(image_size=size, batch_size=64, channels=channels)

    val = evaluation.predict(model, load_split(prepared_dir, "val", **load))
    threshold = evaluation.choose_threshold(val.labels, val.probabilities, config.threshold)
    # the model's hash makes the file change whenever the model does, even if no probability moved
    model_hash = hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
    write_table(val_path, [
        {"id": i, "group": g, "actual": int(a), "probability": round(float(p), 6), "model_sha256": model_hash}
        for i, g, a, p in zip(val.ids, val.groups, val.labels, val.probabilities)
    ])
    test = evaluation.predict(model, load_split(prepared_dir, "test", **load))
    results = _results(params, prepared_dir, val, test, threshold)
    views = len(dihedral.TTA_VIEWS[config.tta])
    results["cost"] = {
        "params": int(trained.count_params()),
        "macs": int(count_macs(trained)) * views,  # per image, all views
        "input": f"{size}x{size}x{channels}",
        "views": views,
    }
    # Latencies change from one execution to the next: eval_run.json, not eval.json.
    latency = {
        "latency_batch1": evaluation.latency(model, (size, size, channels), 1, config.latency_runs),
        f"latency_batch{config.latency_batch}": evaluation.latency(model, (size, size, channels),
                                                                   config.latency_batch, config.latency_runs),
    }
    training = read_split_metrics(model_dir)
    results["training"] = {k: training[k] for k in ("epochs_run", "best_val_auc") if k in training}
    _write_outputs(model_dir, results, test, threshold, latency)
    results["cost"].update(latency)
    run_id = _log_to_mlflow(name, params, training.get("mlflow_run_id"), results, model_dir, val_path,
                            model if config.tta != "none" else None, prepared_dir)
    # the MLflow run whose logged model is exactly what was evaluated: this one with TTA, else training's
    write_metrics(model_dir / "eval_run.json", {**latency, "mlflow_run_id": run_id,
                                               "served_run_id": run_id if config.tta != "none"
                                               else training.get("mlflow_run_id")})
    return results


def _results(params: Params, prepared_dir: Path, val, test, threshold: float) -> dict:
    """The test metrics at the validation threshold, with the validation ones, intervals, groups and levels."""
    config = params.evaluate
    results = evaluation.classification_metrics(test.labels, test.probabilities, threshold, config.calibration_bins)
    results["threshold_rule"] = config.threshold if isinstance(config.threshold, str) else "fixed"
    results["tta"] = config.tta
    results["val"] = {k: v for k, v in evaluation.classification_metrics(
        val.labels, val.probabilities, threshold, config.calibration_bins).items() if k in evaluation.CI_METRICS}
    results["ci95"] = evaluation.bootstrap_ci(test.labels, test.probabilities, threshold, config.bootstrap,
                                              seed=params.seed)
    results["groups"] = evaluation.per_group(test, threshold, config.calibration_bins)
    results["levels"] = evaluation.per_level(test, store.levels(prepared_dir, "test"), threshold)
    return results


def _write_outputs(model_dir: Path, results: dict, test, threshold: float, latency: dict) -> None:
    roc, pr = evaluation.curves(test.labels, test.probabilities)
    write_table(model_dir / "roc.csv", roc)
    write_table(model_dir / "pr.csv", pr)
    predicted = (test.probabilities >= threshold).astype(int)
    write_table(model_dir / "predictions.csv", [
        # float32 precision (9 digits): the export stage takes these as the Keras model's exact outputs
        {"id": i, "group": g, "actual": int(a), "probability": float(f"{p:.9g}"), "predicted": int(q)}
        for i, g, a, p, q in zip(test.ids, test.groups, test.labels, test.probabilities, predicted)
    ])
    write_metrics(model_dir / "eval.json", results)
    write_metrics(model_dir / "scores.json", evaluation.scores(results))  # dvc metrics show: a row per model
    write_metrics(model_dir / "eval_run.json", latency)


def _log_to_mlflow(name: str, params: Params, train_run_id: str | None, results: dict, model_dir: Path,
                   val_path: Path, served=None, prepared: Path | None = None) -> str | None:
    """A linked evaluation run ``evaluate@<name>`` (tag evaluates_run) with the test metrics and their
    95 % intervals, and ``served`` (the model with its test-time augmentation) when there is one."""
    from inspectcnn import tracking

    flat = {f"test_{k}": v for k, v in results.items() if isinstance(v, (int, float)) and v is not None}
    for metric, interval in results["ci95"].items():
        if interval:
            flat[f"test_{metric}_ci_low"], flat[f"test_{metric}_ci_high"] = interval
    flat.update({f"test_{g}_{k}": v for g, m in results["groups"].items() for k, v in m.items()
                 if isinstance(v, (int, float)) and v is not None})
    flat.update({"macs": results["cost"]["macs"], "latency_batch1_ms": results["cost"]["latency_batch1"]["median_ms"]})
    with tracking.stage_run(f"evaluate@{name}", "evaluate", params,
                            {"entry": name, "backend": params.backend, **params.evaluate.model_dump()},
                            tags={"evaluates_run": train_run_id or "unknown", "entry": name},
                            dataset=(prepared, "evaluation") if prepared is not None else None) as run:
        run.log_metrics(flat)
        for table in ("predictions.csv", "roc.csv", "pr.csv", "eval.json", "eval_run.json"):
            run.log_artifact(model_dir / table)
        run.log_artifact(val_path)
        if served is not None:
            run.log_keras_model(served, tuple(int(d) for d in served.input.shape[1:]))
        run_id = run.run_id
    log.info("%s: test ROC-AUC %.4f, accuracy %.4f at threshold %.3f", name, results["roc_auc"] or float("nan"),
             results["accuracy"], results["threshold"])
    return run_id
