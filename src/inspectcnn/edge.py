"""Evaluating the edge student (the `evaluate_edge` stage, reports/edge/), distilled by :mod:`inspectcnn.distil`.

The student is evaluated as every entry is (threshold on validation, test metrics with intervals, levels,
cost), compared with its teacher on the same test cells (paired bootstrap) and exported in ``edge.formats``,
each file checked as the champion's are (parity, int8 accuracy, batch-1 latency through its own runtime,
against ``edge.latency_target_ms``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from inspectcnn import artifacts
from inspectcnn.config import EDGE, Params

log = logging.getLogger(__name__)

TEACHER_KEYS = ("roc_auc", "accuracy")  # the paired comparisons with the teacher in eval.json


# --- the evaluate_edge stage -----------------------------------------------------------------------------
def teacher_comparison(labels: np.ndarray, ids: list[str], student: np.ndarray, threshold: float,
                       teacher_folder: artifacts.ModelFolder, resamples: int, seed: int) -> dict:
    """The student against its teacher on the same test cells: the teacher's probabilities from its own
    evaluation (predictions.csv), a paired bootstrap of student - teacher for each of TEACHER_KEYS."""
    from inspectcnn.scoring import paired_bootstrap

    rows = {row["id"]: row for row in artifacts.read_table(teacher_folder.predictions)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise FileNotFoundError(f"{teacher_folder.predictions} lacks {len(missing)} test cells (e.g. {missing[0]}): "
                                "run the teacher's evaluate stage again (dvc repro)")
    teacher = np.array([float(rows[i]["probability"]) for i in ids])
    teacher_threshold = float(artifacts.read_json(teacher_folder.evaluation)["threshold"])
    return {"teacher": teacher_folder.root.name,
            **{metric: paired_bootstrap(labels, student, teacher, metric, (threshold, teacher_threshold), resamples,
                                        seed) for metric in TEACHER_KEYS}}


def run(params: Params, models_dir: Path, prepared_dir: Path, edge_dir: Path) -> dict:
    """The `evaluate_edge` stage: the student of ``edge_dir`` evaluated (its evaluation files beside it), against
    its teacher, and exported in ``edge.formats`` under ``edge_dir/export`` with every file's checks
    (export.json) and latencies (export_run.json); the evaluation."""
    from inspectcnn import evaluate, scoring, serving
    from inspectcnn.data.dataset import load_split
    from inspectcnn.export import calibration_set, export_model, split_arrays
    from inspectcnn.models.saving import load_model

    folder = artifacts.ModelFolder(edge_dir)
    if not folder.model.is_file():
        raise FileNotFoundError(f"{folder.model} not found: run the distil stage first (dvc repro distil)")
    training = folder.read_training()
    teacher_folder = artifacts.model_folder(training["teacher"], models_dir)
    if not teacher_folder.predictions.is_file():
        raise FileNotFoundError(f"{teacher_folder.predictions} not found: run the evaluation of "
                                f"{training['teacher']} first (dvc repro)")
    formats = [f for f in params.edge.formats]
    student = load_model(folder.model)
    size, channels = int(student.input.shape[1]), int(student.input.shape[-1])
    load = dict(image_size=size, batch_size=64, channels=channels)
    val = scoring.predict(student, load_split(prepared_dir, "val", **load))
    threshold = scoring.choose_threshold(val.labels, val.probabilities, params.evaluate.threshold)
    artifacts.write_table(folder.val_predictions, [
        {"id": i, "group": g, "actual": int(a), "probability": round(float(p), 6)}
        for i, g, a, p in zip(val.ids, val.groups, val.labels, val.probabilities)])
    test = scoring.predict(student, load_split(prepared_dir, "test", **load))
    results = evaluate._results(params, prepared_dir, val, test, threshold, "none")
    results["cost"] = evaluate.cost(student, "none")
    results["training"] = {k: training[k] for k in ("epochs_run", "best_val_auc", "start_val_auc", "distilled")
                           if k in training}
    results["vs_teacher"] = teacher_comparison(test.labels, list(test.ids), test.probabilities, threshold,
                                               teacher_folder, params.evaluate.bootstrap, params.seed)
    latency = evaluate.latencies(student, params.evaluate)
    evaluate._write_outputs(folder, results, test, threshold)
    export_dir = edge_dir / artifacts.EDGE_EXPORT.name
    if export_dir.exists():
        shutil.rmtree(export_dir)
    export_dir.mkdir(parents=True)
    spec = serving.entry_spec(EDGE, student, results, prepared_dir)
    serving.write_spec(spec, export_dir)
    images, labels = split_arrays(prepared_dir, "test", size, channels)
    from inspectcnn.formats import FORMATS

    calibration = (calibration_set(prepared_dir, size, channels, params.export.calibration_size, params.seed)
                   if any(FORMATS[f].precision == "int8" for f in formats) else images[:0])
    rows = export_model(student, spec, formats, images, labels, calibration, params.export, export_dir,
                        reference=test.probabilities)
    artifacts.write_export({"entry": EDGE, "threshold": float(spec["threshold"]), "test_count": int(len(labels)),
                            "latency_target_ms": params.edge.latency_target_ms, "formats": rows},
                           edge_dir / artifacts.EDGE_EXPORT_METRICS.name, edge_dir / artifacts.EDGE_EXPORT_RUN.name)
    results["cost"].update(latency)
    run_id = evaluate._log_to_mlflow(EDGE, params, training.get("mlflow_run_id"), results, folder,
                                     folder.val_predictions, None, prepared_dir)
    artifacts.write_json(folder.evaluation_run, {**latency, "mlflow_run_id": run_id,
                                                 "served_run_id": training.get("mlflow_run_id")})
    results["export"] = rows
    return results

