"""Evaluating one entry (the `evaluate@<entry>` stages): validation threshold, test metrics with intervals,
curves, per-group and per-level results, cost and latency; one linked MLflow run."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from inspectcnn import dihedral, scoring
from inspectcnn.artifacts import ModelFolder, read_json, val_predictions, write_json, write_table
from inspectcnn.config import Params
from inspectcnn.data import store
from inspectcnn.data.dataset import load_split
from inspectcnn.models.saving import load_model
from inspectcnn.models.summary import count_macs

log = logging.getLogger(__name__)


def single_member(name: str, params: Params, model_dir: Path) -> str | None:
    """The member of an ensemble of one (that model itself, nothing to re-evaluate), else None."""
    if name not in params.ensembles():
        return None
    members = ModelFolder(model_dir).read_training().get("members") or {}
    return next(iter(members)) if len(members) == 1 else None


def reuse_member(member: str, model_dir: Path, val_path: Path, member_val: Path) -> dict:
    """An ensemble of one member is that member: its evaluation files, copied (marked ``same_as``)."""
    import shutil

    source, target = ModelFolder(model_dir.parent / member), ModelFolder(model_dir)
    missing = [f for f in (*source.evaluation_files, member_val) if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"the ensemble is {member} alone, whose evaluation is incomplete (missing "
                                f"{', '.join(map(str, missing))}): run evaluate for {member} first")
    for copied, copy in zip(source.evaluation_files, target.evaluation_files):
        shutil.copyfile(copied, copy)
    val_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(member_val, val_path)
    results = {**read_json(target.evaluation), "same_as": member}
    write_json(target.evaluation, results)
    log.info("%s: one member (%s): its evaluation reused, nothing re-evaluated", model_dir.name, member)
    return results


def weights_sha256(model) -> str:
    """A fingerprint of a model's weights (not of its ``.keras`` zip, which embeds the time it was saved):
    equal for equal weights, so a table that carries it changes exactly when the model does."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:16]


def run(name: str, params: Params, prepared_dir: Path, model_dir: Path, val_path: Path,
        candidates_dir: Path) -> dict:
    """The `evaluate@<name>` stage: evaluate ``model_dir``'s model (wrapped with the configured test-time
    augmentation) on the test split, the threshold chosen on validation. Writes the folder's evaluation
    files and the validation probabilities to ``val_path``; an ensemble of one member reuses that member's
    evaluation (its validation table from ``candidates_dir``)."""
    folder = ModelFolder(model_dir)
    if not folder.model.is_file():
        raise FileNotFoundError(f"{folder.model} not found: run its train/transfer stage first")
    member = single_member(name, params, model_dir)
    if member is not None:
        return reuse_member(member, model_dir, val_path, val_predictions(member, candidates_dir))
    config = params.evaluate
    tta = params.tta(name)
    trained = load_model(folder.model)
    model = dihedral.tta_model(trained, tta)  # what is evaluated is what is registered and served
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    load = dict(image_size=size, batch_size=64, channels=channels)

    val = scoring.predict(model, load_split(prepared_dir, "val", **load))
    threshold = scoring.choose_threshold(val.labels, val.probabilities, config.threshold)
    # the weights' fingerprint makes the file change whenever the model does, even if no probability moved:
    # the ensemble, which reads the members' models, depends on these tables
    fingerprint = weights_sha256(trained)
    write_table(val_path, [
        {"id": i, "group": g, "actual": int(a), "probability": round(float(p), 6), "weights_sha256": fingerprint}
        for i, g, a, p in zip(val.ids, val.groups, val.labels, val.probabilities)
    ])
    test = scoring.predict(model, load_split(prepared_dir, "test", **load))
    results = _results(params, prepared_dir, val, test, threshold, tta)
    results["cost"] = cost(trained, tta)
    latency = latencies(model, config)  # differ from one execution to the next: eval_run.json, not eval.json
    training = folder.read_training()
    results["training"] = {k: training[k] for k in ("epochs_run", "best_val_auc") if k in training}
    _write_outputs(folder, results, test, threshold)
    results["cost"].update(latency)
    run_id = _log_to_mlflow(name, params, training.get("mlflow_run_id"), results, folder, val_path,
                            model if tta != "none" else None, prepared_dir)
    # this execution's record, written once: latencies, and the MLflow run whose logged model is exactly
    # what was evaluated (this one with TTA, else training's)
    write_json(folder.evaluation_run, {**latency, "mlflow_run_id": run_id,
                                       "served_run_id": run_id if tta != "none"
                                       else training.get("mlflow_run_id")})
    return results


def cost(trained, tta: str) -> dict:
    """Parameters, multiply-accumulates per image over every test-time view, input shape, views."""
    size, channels = int(trained.input.shape[1]), int(trained.input.shape[-1])
    views = len(dihedral.TTA_VIEWS[tta])
    return {"params": int(trained.count_params()), "macs": int(count_macs(trained)) * views,
            "input": f"{size}x{size}x{channels}", "views": views}


def latencies(model, config) -> dict:
    """The median latency of batch 1 and of ``latency_batch`` (the one protocol, :func:`scoring.latency`)."""
    shape = tuple(int(d) for d in model.input.shape[1:])
    return {"latency_batch1": scoring.latency(model, shape, 1, config.latency_runs),
            f"latency_batch{config.latency_batch}": scoring.latency(model, shape, config.latency_batch,
                                                                   config.latency_runs)}


def _results(params: Params, prepared_dir: Path, val, test, threshold: float, tta: str) -> dict:
    """The test metrics at the validation threshold, with the validation ones, intervals, groups and levels."""
    config = params.evaluate
    results = scoring.classification_metrics(test.labels, test.probabilities, threshold, config.calibration_bins)
    results["threshold_rule"] = config.threshold if isinstance(config.threshold, str) else "fixed"
    results["tta"] = tta
    results["val"] = {k: v for k, v in scoring.classification_metrics(
        val.labels, val.probabilities, threshold, config.calibration_bins).items() if k in scoring.CI_METRICS}
    results["ci95"] = scoring.bootstrap_ci(test.labels, test.probabilities, threshold, config.bootstrap,
                                              seed=params.seed)
    results["groups"] = scoring.per_group(test, threshold, config.calibration_bins)
    results["levels"] = scoring.per_level(test, store.levels(prepared_dir, "test"), threshold)
    return results


def _write_outputs(folder: ModelFolder, results: dict, test, threshold: float) -> None:
    roc, pr = scoring.curves(test.labels, test.probabilities)
    write_table(folder.roc, roc)
    write_table(folder.pr, pr)
    predicted = (test.probabilities >= threshold).astype(int)
    write_table(folder.predictions, [
        # float32 precision (9 digits): the export stage takes these as the Keras model's exact outputs
        {"id": i, "group": g, "actual": int(a), "probability": float(f"{p:.9g}"), "predicted": int(q)}
        for i, g, a, p, q in zip(test.ids, test.groups, test.labels, test.probabilities, predicted)
    ])
    write_json(folder.evaluation, results)
    write_json(folder.scores, scoring.scores(results))  # dvc metrics show: a row per model


def _log_to_mlflow(name: str, params: Params, train_run_id: str | None, results: dict, folder: ModelFolder,
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
        for table in (folder.predictions, folder.roc, folder.pr, folder.evaluation):
            run.log_artifact(table)
        run.log_artifact(val_path)
        if served is not None:
            run.log_keras_model(served, tuple(int(d) for d in served.input.shape[1:]))
        run_id = run.run_id
    log.info("%s: test ROC-AUC %.4f, accuracy %.4f at threshold %.3f", name, results["roc_auc"] or float("nan"),
             results["accuracy"], results["threshold"])
    return run_id
