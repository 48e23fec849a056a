"""The edge student (reports/edge/): one view of one network, distilled from the champion as it is served.

The champion answers with its test-time augmentation (8 views for ``dihedral``): 8 forward passes per part,
too slow for a line camera. The `distil` stage trains a single-view student with
``keras.distillation.Distiller``: the teacher is the served champion (frozen, every view), the student starts
from the trained network of a ``transfer:`` or ``models:`` entry, and each step's loss mixes the labels'
binary cross-entropy with the cross-entropy to the teacher's probability (``edge.student_loss_weight``). The
epoch kept is the best on validation ROC-AUC, the starting network included: distillation that does not help
on validation leaves the student as it started, and says so.

The `evaluate_edge` stage evaluates the student as every entry is evaluated (threshold on validation, test
metrics with intervals, levels, cost), compares it with its teacher on the same test cells (paired bootstrap)
and exports it in ``edge.formats``, each file checked as the champion's are (parity, int8 accuracy, batch-1
latency through its own runtime against ``edge.latency_target_ms``).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from inspectcnn import artifacts
from inspectcnn.config import EDGE, ConfigError, Params

log = logging.getLogger(__name__)

TEACHER_KEYS = ("roc_auc", "accuracy")  # the paired comparisons with the teacher in eval.json


def student_entry(params: Params, champion: str) -> str:
    """The entry whose trained network starts the student: ``edge.student``; with ``auto``, the champion
    itself when it is one network, else the first transfer: entry, else the first models: entry."""
    wanted = params.edge.student
    single = [*params.transfer, *params.models]
    if wanted != "auto":
        if wanted not in single:
            raise ConfigError(f"edge.student: {wanted} is not an entry of transfer: or models: "
                              f"(entries: {sorted(single)}), or auto")
        return wanted
    if champion in single:
        return champion
    if not single:
        raise ConfigError("edge.student: auto needs a transfer: or models: entry to start the student from")
    return single[0]


def source_config(params: Params, name: str):
    """The training config of the student's starting entry (batch size, augmentation, fine-tuned layers)."""
    return params.transfer_config(name) if name in params.transfer else params.model(name)


def teacher_model(params: Params, champion: str, models_dir: Path):
    """(the champion as served: its network inside its test-time augmentation, the augmentation's name)."""
    from inspectcnn import dihedral
    from inspectcnn.models.saving import load_model

    folder = artifacts.model_folder(champion, models_dir)
    tta = folder.read_evaluation().get("tta", "none")
    return dihedral.tta_model(load_model(folder.model), tta), tta


def sized_teacher(teacher, shape: tuple[int, ...]):
    """The teacher taking the student's input: resized to its own size first when the two differ."""
    import keras

    if tuple(int(d) for d in teacher.input.shape[1:]) == tuple(shape):
        return teacher
    if int(teacher.input.shape[-1]) != shape[-1]:
        raise ConfigError(f"edge: the champion takes {teacher.input.shape[-1]} channel(s), the student "
                          f"{shape[-1]}: choose an edge.student trained on the same images")
    size = int(teacher.input.shape[1])
    inputs = keras.Input(shape)
    return keras.Model(inputs, teacher(keras.layers.Resizing(size, size)(inputs)), name="teacher_resized")


def _distiller(teacher, student, config):
    import keras

    from inspectcnn.training import compile_binary
    from inspectcnn.training.optim import build_optimizer

    # one sigmoid output: the teacher's probability is the soft target of a binary cross-entropy (temperature 1:
    # LogitsDistillation applies its loss to the outputs as they are)
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=1.0,
                                                                  loss=keras.losses.BinaryCrossentropy()),
        student_loss_weight=config.student_loss_weight, name="edge_distiller")
    compile_binary(distiller, build_optimizer("adam", config.learning_rate), loss=keras.losses.BinaryCrossentropy())
    return distiller


def distil_student(params: Params, champion: str, models_dir: Path, prepared_dir: Path, work_dir: Path,
                   run=None) -> dict:
    """Distil the served ``champion`` into the single-view student; writes ``work_dir/best.keras`` and its
    history; the metrics (validation only: the test split is not read here)."""
    import keras

    from inspectcnn import training
    from inspectcnn.data.dataset import load_split
    from inspectcnn.data.store import read_meta
    from inspectcnn.models.saving import load_model
    from inspectcnn.training import NanGuard, ThroughputMeter

    config = params.edge
    name = student_entry(params, champion)
    source = source_config(params, name)
    meta = read_meta(prepared_dir)
    runtime = training.setup(seed=params.seed, deterministic=source.deterministic,
                             mixed_precision=source.mixed_precision, strategy=source.strategy)
    started = time.perf_counter()
    with runtime.strategy.scope():
        student = load_model(artifacts.model_folder(name, models_dir).model)
        if name in params.transfer:  # the layers (and BatchNorm mode) its own fine-tuning trained
            from inspectcnn.transfer.surgery import set_trainable

            set_trainable(student, source.finetune_layer, source.batchnorm)
        shape = tuple(int(d) for d in student.input.shape[1:])
        teacher, tta = teacher_model(params, champion, models_dir)
        distiller = _distiller(sized_teacher(teacher, shape), student, config)
    load = dict(image_size=shape[0], channels=shape[-1], batch_size=source.batch_size * runtime.replicas,
                shard=runtime.strategy.shard)
    val = load_split(prepared_dir, "val", **load)
    train = load_split(prepared_dir, "train", shuffle=True, augment=source.augment, seed=params.seed, **load)
    start = distiller.evaluate(val, verbose=0, return_dict=True)
    log.info("edge: student %s (one view) starts at validation ROC-AUC %.4f; teacher %s (TTA %s)", name,
             start["auc"], champion, tta)
    work_dir.mkdir(parents=True, exist_ok=True)
    start_weights = work_dir / "start.weights.h5"
    student.save_weights(start_weights)
    best_weights = work_dir / "best.weights.h5"
    history = artifacts.ModelFolder(work_dir).history
    meter, nan_guard = ThroughputMeter(int(meta["splits"]["train"]["count"])), NanGuard()
    # the best epoch on validation ROC-AUC, and only one better than the starting network
    checkpoint = keras.callbacks.ModelCheckpoint(str(best_weights), monitor="val_auc", mode="max",
                                                 save_best_only=True, save_weights_only=True,
                                                 initial_value_threshold=training.best_so_far(
                                                     history, "val_auc", "max") or start["auc"])
    callbacks = training.phase_callbacks(work_dir / "backup", history, meter, nan_guard, checkpoint=checkpoint,
                                         run=run)
    training.fit_phase(distiller, train, validation=val, epochs=(0, config.epochs), callbacks=callbacks,
                       nan_guard=nan_guard, work_dir=work_dir, shuffle=False,
                       diverged=f"edge: the loss became NaN/inf in epoch {{epoch}} - lower edge.learning_rate")
    improved = best_weights.is_file()
    distiller.load_weights(best_weights) if improved else student.load_weights(start_weights)
    student.save(work_dir / "best.keras")
    rows = training.read_history(history)
    _, summary = training.summarize(rows, "val_auc")
    return {
        "student": name, "teacher": champion, "teacher_tta": tta, "views": 1,
        "student_loss_weight": config.student_loss_weight, "learning_rate": config.learning_rate,
        "epochs": config.epochs,
        "start_val_auc": round(float(start["auc"]), 6),
        "distilled_val_auc": round(float(summary["best_val_auc"]), 6),  # the best distilled epoch's
        "distilled": bool(improved),  # False: no epoch beat the starting network on validation
        "kept": (f"distilled epoch {summary['best_epoch']}" if improved else
                 f"the starting network ({name}, one view): no distilled epoch beat its validation ROC-AUC"),
        "best_epoch": summary["best_epoch"] if improved else 0,
        "epochs_run": summary["epochs_run"],
        # what the kept student scores on validation (Keras' ROC-AUC, as every history.csv)
        "best_val_auc": round(float(summary["best_val_auc"] if improved else start["auc"]), 6),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "train_images_per_s": round(meter.images_per_s, 2),
        "params": int(student.count_params()),
        "image_size": shape[0],
    }


def run_distil(params: Params, models_dir: Path, prepared_dir: Path, champion_path: Path, out_dir: Path) -> dict:
    """The `distil` stage: the student of the champion of ``champion_path`` into ``out_dir`` (model.keras,
    metrics.json, run.json, history.csv), inside its MLflow run; the metrics."""
    from inspectcnn import champion as choice, plots, tracking
    from inspectcnn.data.store import read_meta
    from inspectcnn.models.saving import load_model
    from inspectcnn.training import publish, read_history
    from inspectcnn.training import work_dir as work_folder

    record = choice.read(champion_path)
    champion = record["champion"]
    name = student_entry(params, champion)  # a bad edge.student: an error before any work
    for needed in (artifacts.model_folder(name, models_dir).model,
                   artifacts.model_folder(champion, models_dir).evaluation):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found: run the pipeline up to the champion stage first (dvc repro)")
    meta = read_meta(prepared_dir)
    work_dir = work_folder("edge", params.seed, params.edge)
    run_params = {"seed": params.seed, "backend": params.backend, "entry": EDGE, "teacher": champion,
                  **params.edge.model_dump(), "student": name,
                  "data": {"source": meta["source"], "train_images": meta["splits"]["train"]["count"]}}
    with tracking.stage_run("distil", "distil", params, run_params, run_name=f"distil@{EDGE}",
                            tags={"entry": EDGE, "teacher": champion},
                            dataset=(prepared_dir, "training")) as run:
        metrics = distil_student(params, champion, models_dir, prepared_dir, work_dir, run)
        if run.active:
            run.log_metrics({k: v for k, v in metrics.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "best_epoch"})
            figure = plots.history_figure(read_history(artifacts.ModelFolder(work_dir).history), title="distil")
            run.log_figure(figure, "history.png")
            plots.close(figure)
            student = load_model(work_dir / "best.keras")
            run.log_keras_model(student, tuple(student.input.shape[1:]))
            metrics["mlflow_run_id"] = run.run_id
    return publish(work_dir, out_dir, metrics).metrics


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


def run_evaluate(params: Params, models_dir: Path, prepared_dir: Path, edge_dir: Path) -> dict:
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
    export_dir = edge_dir / "export"
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
                           folder.root / "export.json", folder.root / "export_run.json")
    results["cost"].update(latency)
    run_id = evaluate._log_to_mlflow(EDGE, params, training.get("mlflow_run_id"), results, folder,
                                     folder.val_predictions, None, prepared_dir)
    artifacts.write_json(folder.evaluation_run, {**latency, "mlflow_run_id": run_id,
                                                 "served_run_id": training.get("mlflow_run_id")})
    results["export"] = rows
    return results


def latency_verdict(export: dict, fmt: str = "onnx_int8") -> dict | None:
    """Whether ``fmt``'s batch-1 latency (export.json with its run record merged) meets the target."""
    row = (export or {}).get("formats", {}).get(fmt) or {}
    if row.get("status") != "ok" or "latency_b1_ms" not in row:
        return None
    target = float(export["latency_target_ms"])
    return {"format": fmt, "ms": float(row["latency_b1_ms"]), "target_ms": target,
            "met": float(row["latency_b1_ms"]) < target}
