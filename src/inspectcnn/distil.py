"""Distilling the champion into the edge student (the `distil` stage, reports/edge/).

The champion answers with its test-time augmentation (8 views for ``dihedral``): 8 forward passes per part,
too slow for a line camera. This trains a single-view student with ``keras.distillation.Distiller``: the
teacher is the served champion (frozen, every view), the student starts from the trained network of a
``transfer:`` or ``models:`` entry, and each step's loss mixes the labels' binary cross-entropy with the
cross-entropy to the teacher's probability (``edge.student_loss_weight``). The epoch kept is the best on
validation ROC-AUC, the starting network included: distillation that does not help on validation leaves the
student as it started, and its metrics say so. The test split is not read here (:mod:`inspectcnn.edge`
evaluates the student).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.config import EDGE, ConfigError, Params

log = logging.getLogger(__name__)

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


def run(params: Params, models_dir: Path, prepared_dir: Path, champion_path: Path, out_dir: Path) -> dict:
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
