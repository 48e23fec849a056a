"""Training one architecture from scratch: Keras ``fit`` on tf.data with Keras' own callbacks, resumable
(see :mod:`inspectcnn.training.checkpoints`)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np

from inspectcnn.artifacts import ModelFolder
from inspectcnn.config import TrainConfig
from inspectcnn.data.dataset import load_split
from inspectcnn.data.store import read_meta
from inspectcnn.models import InputTooSmallError, build_model, check_input_size
from inspectcnn.training import checkpoints, runtime
from inspectcnn.training.callbacks import NanGuard, ThroughputMeter, phase_callbacks
from inspectcnn.training.checkpoints import TrainResult, best_so_far, publish, read_history
from inspectcnn.training.fit import compile_binary, fit_phase, monitor_mode, summarize
from inspectcnn.training.runtime import TrainingError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- set-up


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    from inspectcnn.training.optim import build_optimizer

    return build_optimizer(config.optimizer, config.learning_rate, schedule=config.schedule,
                           steps=config.epochs * steps_per_epoch, warmup_steps=config.warmup_epochs * steps_per_epoch,
                           weight_decay=config.weight_decay)


def class_weights(labels: list[int]) -> dict[int, float]:
    """'balanced' weights n / (2 * n_class), as scikit-learn's compute_class_weight."""
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.array([0, 1])
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {int(c): float(w) for c, w in zip(classes, weights)}


def train_labels(prepared_dir: Path) -> list[int]:
    from inspectcnn.data import store

    return store.labels(prepared_dir, "train")


def check_before_training(name: str, config: TrainConfig, meta: dict) -> int:
    """Every check that can fail fast, before a model is built; returns the channel count."""
    channels = config.channels or int(meta["channels"])
    if int(meta["channels"]) == 3 and channels == 1:
        raise TrainingError(f"models.{name}.channels: 1, but the prepared images are RGB")
    try:
        check_input_size(config.arch, config.image_size, channels)
    except InputTooSmallError as error:
        raise TrainingError(f"models.{name}.image_size: {error}") from None
    train_count = int(meta["splits"]["train"]["count"])
    if config.batch_size > train_count:
        raise TrainingError(
            f"models.{name}.batch_size: {config.batch_size} is larger than the training split ({train_count} images)"
        )
    if config.image_size > int(meta["image_size"]):
        log.warning("models.%s.image_size %d is larger than the stored %d px: images are upsampled",
                    name, config.image_size, meta["image_size"])
    return channels


# --------------------------------------------------------------------------- the run


def train(name: str, config: TrainConfig, prepared_dir: Path, out_dir: Path, *, seed: int, run=None,
          work_dir: Path | None = None, callbacks: list[keras.callbacks.Callback] | tuple = ()) -> TrainResult:
    """Train ``config.arch`` on the prepared data; write model.keras, history.csv, metrics.json to out_dir.

    ``callbacks`` are called after the project's own (checkpointing, logging), e.g. a timer.
    """
    meta = read_meta(prepared_dir)
    channels = check_before_training(name, config, meta)
    work_dir = work_dir or checkpoints.work_dir(name, seed, config)
    work_dir.mkdir(parents=True, exist_ok=True)

    run_time = runtime.setup(seed=seed, deterministic=config.deterministic, mixed_precision=config.mixed_precision,
                             strategy=config.strategy)
    policy, strategy, replicas = run_time.policy, run_time.strategy, run_time.replicas
    batch_size = config.batch_size * replicas  # batch_size is per replica

    load = dict(image_size=config.image_size, batch_size=batch_size, channels=channels, cache=config.cache,
                shard=strategy.shard)  # shard: this process's rows of each batch (multi-worker JAX)
    train_data = load_split(prepared_dir, "train", shuffle=True, augment=config.augment, seed=seed, **load)
    val_data = load_split(prepared_dir, "val", **load)
    train_count = int(meta["splits"]["train"]["count"])
    weights = class_weights(train_labels(prepared_dir)) if config.class_weight == "balanced" else None
    model = compiled_model(config, channels, strategy, math.ceil(train_count / batch_size))

    best_path = work_dir / "best.keras"
    meter, nan_guard = ThroughputMeter(train_count), NanGuard()
    callbacks = [*_callbacks(config, work_dir, meter, nan_guard, run), *callbacks]

    log.info("training %s (%s, %s px, width %s) on %d images, %d replica(s), policy %s",
             name, config.arch, config.image_size, config.width, train_count, replicas, policy)
    wall = fit_phase(model, train_data, validation=val_data, epochs=(0, config.epochs), callbacks=callbacks,
                     nan_guard=nan_guard, work_dir=work_dir, around=runtime.peers_alive(name),
                     class_weight=weights, shuffle=False,  # train_data shuffles itself
                     diverged=(f"{name}: the loss became NaN/inf in epoch {{epoch}} - training diverged. "
                               f"Lower models.{name}.learning_rate (now {config.learning_rate}) or turn on "
                               "gradient-friendly settings (schedule: cosine with warmup_epochs); no model was saved"))
    if not best_path.is_file():
        raise TrainingError(f"{name}: no epoch produced a finite {config.monitor}; no model was saved")

    return _finish(config, model, work_dir, out_dir, meter, wall, channels, policy, replicas)


def compiled_model(config: TrainConfig, channels: int, strategy, steps_per_epoch: int) -> keras.Model:
    """The entry's architecture, built and compiled in the strategy's scope (its variables on every replica)."""
    with strategy.scope():
        model = build_model(config.arch, (config.image_size, config.image_size, channels), width=config.width)
        compile_binary(model, make_optimizer(config, steps_per_epoch),
                       loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
                       jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
    return model


def _callbacks(config: TrainConfig, work_dir: Path, meter, nan_guard, run) -> list:
    """Checkpointing, resuming, logging and the schedule's callbacks (early stopping, plateau)."""
    mode = monitor_mode(config.monitor)
    history_path, best_path = ModelFolder(work_dir).history, work_dir / "best.keras"
    schedule = []
    if config.early_stopping_patience:
        schedule.append(keras.callbacks.EarlyStopping(config.monitor, mode=mode,
                                                      patience=config.early_stopping_patience))
    if config.schedule == "plateau":
        schedule.append(keras.callbacks.ReduceLROnPlateau(config.monitor, mode=mode, factor=0.5,
                                                          patience=max(1, config.early_stopping_patience // 2)))
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(best_path), monitor=config.monitor, mode=mode, save_best_only=True,
        initial_value_threshold=best_so_far(history_path, config.monitor, mode),
    )
    return phase_callbacks(work_dir / "backup", history_path, meter, nan_guard, checkpoint=checkpoint,
                           log_learning_rate=True, extra=schedule, run=run)


def _finish(config: TrainConfig, model, work_dir: Path, out_dir: Path, meter, wall: float, channels: int,
            policy: str, replicas: int) -> TrainResult:
    """The summary metrics; published to ``out_dir`` (by the chief worker only, see ``publish``)."""
    _, metrics = summarize(read_history(ModelFolder(work_dir).history), config.monitor)
    metrics = {
        **metrics,
        "train_images_per_s": round(meter.images_per_s, 2),
        "wall_time_s": round(wall, 2),
        "params": int(model.count_params()),
        "image_size": config.image_size,
        "channels": channels,
        "precision_policy": policy,
        "replicas": replicas,
    }
    return publish(work_dir, out_dir, metrics)
