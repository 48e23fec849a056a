"""Training one architecture: Keras ``fit`` on tf.data with Keras' own callbacks, resumable.

Work in progress lives in ``checkpoints/<entry>-<params hash>/`` (not a DVC output, so DVC does
not delete it when the stage is rerun): the BackupAndRestore state, the best model so far and
the per-epoch history. A killed run resumes from its last completed epoch; changed params get a
fresh folder. Only a completed run copies its results into the stage outputs.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from inspectcnn import interrupts
from inspectcnn.config import TrainConfig
from inspectcnn.data.dataset import load_split
from inspectcnn.data.prepare import read_meta
from inspectcnn.errors import UserError
from inspectcnn.models import InputTooSmallError, build_model, check_input_size

log = logging.getLogger(__name__)
CHECKPOINTS = Path("checkpoints")


class TrainingError(UserError, RuntimeError):
    """Training cannot start or went wrong in a way the user must act on (bad params, divergence)."""


@dataclass(frozen=True)
class TrainResult:
    metrics: dict
    model_path: Path
    history_path: Path


# --------------------------------------------------------------------------- devices


def configure_precision(mode: str) -> str:
    """Set Keras' global dtype policy; "auto" is mixed precision on a GPU, float32 on a CPU."""
    if mode == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            mode = "off"
        else:
            major = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))[0]
            mode = "bfloat16" if major >= 8 else "float16"
    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[mode]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def make_strategy(kind: str) -> tf.distribute.Strategy:
    """tf.distribute does all multi-device work: MirroredStrategy on one machine, MultiWorkerMirrored
    (reads TF_CONFIG) across machines; "auto" mirrors when there is more than one GPU."""
    if kind == "auto":
        kind = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise TrainingError("strategy: multi_worker needs the TF_CONFIG environment variable (see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    if not task:
        return True
    has_chief = "chief" in config.get("cluster", {})
    return task.get("type") == "chief" or (not has_chief and task.get("type") == "worker" and task.get("index") == 0)


# --------------------------------------------------------------------------- callbacks


class ThroughputMeter(keras.callbacks.Callback):
    """Training images per second of each epoch, excluding validation."""

    def __init__(self, images_per_epoch: int):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.rates: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start:
            self.rates.append(self.images_per_epoch / (time.perf_counter() - self._start))
            self._start = 0.0

    @property
    def images_per_s(self) -> float:
        """Median over epochs, leaving out the first (graph tracing, cache filling) when possible."""
        rates = self.rates[1:] or self.rates
        return float(np.median(rates)) if rates else 0.0


class NanGuard(keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN, remembering the epoch at which the loss stopped being finite.

    Safe to run on Keras' callback thread (``async_safe``): it only reads the batch's loss and sets
    ``stop_training``, so it does not force a device-to-host sync after every step.
    """

    async_safe = True
    diverged_at: int | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.diverged_at is None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.diverged_at = self._epoch + 1


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises the KeyboardInterrupt of a Ctrl-C at the epoch end if Python swallowed the first one
    (see :mod:`inspectcnn.interrupts`); does nothing per batch, so it is ``async_safe``."""

    async_safe = True

    def on_epoch_end(self, epoch, logs=None):
        interrupts.check()


def allow_async_dispatch(callbacks: list[keras.callbacks.Callback]) -> None:
    """Let Keras run per-batch callback hooks off the training thread when they do nothing per batch.

    BackupAndRestore and ModelCheckpoint define batch hooks (for batch-frequency saving) that are
    no-ops when they save per epoch; but any batch hook makes Keras pull every step's logs to the
    host synchronously, which costs small models up to a fifth of their speed on a CPU.
    """
    for callback in callbacks:
        if isinstance(callback, (keras.callbacks.BackupAndRestore, keras.callbacks.ModelCheckpoint)) \
                and callback.save_freq == "epoch":
            callback.async_safe = True


class LogLearningRate(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


# --------------------------------------------------------------------------- set-up


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        warmup = config.warmup_epochs * steps_per_epoch
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else config.learning_rate,
            decay_steps=max(1, config.epochs * steps_per_epoch - warmup),
            alpha=0.01,
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    kinds = {
        "adam": lambda: keras.optimizers.Adam(learning_rate, weight_decay=config.weight_decay or None),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay or 0.004),
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True,
                                            weight_decay=config.weight_decay or None),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate, weight_decay=config.weight_decay or None),
    }
    return kinds[config.optimizer]()


def class_weights(labels: list[int]) -> dict[int, float]:
    """'balanced' weights n / (2 * n_class), as scikit-learn's compute_class_weight."""
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.array([0, 1])
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {int(c): float(w) for c, w in zip(classes, weights)}


def train_labels(prepared_dir: Path) -> list[int]:
    import pandas as pd

    manifest = pd.read_csv(Path(prepared_dir) / "manifest.csv", usecols=["label", "split"])
    return manifest.loc[manifest["split"] == "train", "label"].astype(int).tolist()


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


def best_so_far(history_path: Path, monitor: str, mode: str) -> float | None:
    if not history_path.is_file():
        return None
    with history_path.open() as handle:
        values = [float(row[monitor]) for row in csv.DictReader(handle) if row.get(monitor) not in (None, "")]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


# --------------------------------------------------------------------------- the run


def train(
    name: str,
    config: TrainConfig,
    prepared_dir: Path,
    out_dir: Path,
    *,
    seed: int,
    run=None,
    work_dir: Path | None = None,
    callbacks: list[keras.callbacks.Callback] | tuple = (),
) -> TrainResult:
    """Train ``config.arch`` on the prepared data; write model.keras, history.csv, metrics.json to out_dir.

    ``callbacks`` are called after the project's own (checkpointing, logging), e.g. a timer.
    """
    from inspectcnn.tracking import params_hash

    meta = read_meta(prepared_dir)
    channels = check_before_training(name, config, meta)
    work_dir = work_dir or CHECKPOINTS / f"{name}-{params_hash({'seed': seed, **config.model_dump()})}"
    work_dir.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = configure_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    batch_size = config.batch_size * replicas  # batch_size is per replica

    train_data = load_split(prepared_dir, "train", image_size=config.image_size, batch_size=batch_size,
                            channels=channels, shuffle=True, augment=config.augment, seed=seed, cache=config.cache)
    val_data = load_split(prepared_dir, "val", image_size=config.image_size, batch_size=batch_size,
                          channels=channels, cache=config.cache)
    train_count = int(meta["splits"]["train"]["count"])
    steps_per_epoch = math.ceil(train_count / batch_size)
    weights = class_weights(train_labels(prepared_dir)) if config.class_weight == "balanced" else None

    with strategy.scope():
        model = build_model(config.arch, (config.image_size, config.image_size, channels), width=config.width)
        model.compile(
            optimizer=make_optimizer(config, steps_per_epoch),
            loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
            metrics=[
                keras.metrics.BinaryAccuracy(name="accuracy"),
                keras.metrics.AUC(name="auc"),
                keras.metrics.AUC(curve="PR", name="pr_auc"),
            ],
            jit_compile=config.jit_compile,
            steps_per_execution=config.steps_per_execution,
        )

    mode = "min" if config.monitor == "val_loss" else "max"
    history_path, best_path = work_dir / "history.csv", work_dir / "best.keras"
    meter, nan_guard = ThroughputMeter(train_count), NanGuard()
    extra_callbacks, callbacks = list(callbacks), [
        keras.callbacks.BackupAndRestore(str(work_dir / "backup"), delete_checkpoint=False),
        LogLearningRate(),
        StopOnInterrupt(),
        nan_guard,
        keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=config.monitor, mode=mode, save_best_only=True,
            initial_value_threshold=best_so_far(history_path, config.monitor, mode),
        ),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        meter,
    ]
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(config.monitor, mode=mode,
                                                       patience=config.early_stopping_patience))
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(config.monitor, mode=mode, factor=0.5,
                                                           patience=max(1, config.early_stopping_patience // 2)))
    if run is not None and (callback := run.keras_callback()) is not None:
        callbacks.append(callback)
    callbacks += extra_callbacks
    allow_async_dispatch(callbacks)

    log.info("training %s (%s, %s px, width %s) on %d images, %d replica(s), policy %s",
             name, config.arch, config.image_size, config.width, train_count, replicas, policy)
    started = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=config.epochs, class_weight=weights,
              callbacks=callbacks, shuffle=False, verbose=2)  # train_data shuffles itself
    wall = time.perf_counter() - started

    if nan_guard.diverged_at is not None:
        shutil.rmtree(work_dir, ignore_errors=True)  # nothing in it is worth resuming from
        raise TrainingError(
            f"{name}: the loss became NaN/inf in epoch {nan_guard.diverged_at} - training diverged. "
            f"Lower models.{name}.learning_rate (now {config.learning_rate}) or turn on gradient-friendly "
            "settings (schedule: cosine with warmup_epochs); no model was saved"
        )
    if not best_path.is_file():
        raise TrainingError(f"{name}: no epoch produced a finite {config.monitor}; no model was saved")

    rows = read_history(history_path)
    best = (max if mode == "max" else min)(rows, key=lambda r: float(r[config.monitor]))
    metrics = {
        "best_epoch": int(best["epoch"]) + 1,
        "epochs_run": len(rows),
        **{f"best_{k}": float(best[k]) for k in ("val_loss", "val_accuracy", "val_auc", "val_pr_auc") if k in best},
        "train_images_per_s": round(meter.images_per_s, 2),
        "wall_time_s": round(wall, 2),
        "params": int(model.count_params()),
        "image_size": config.image_size,
        "channels": channels,
        "precision_policy": policy,
        "replicas": replicas,
    }
    if not is_chief():  # other workers of a multi-worker run must not write the shared outputs
        return TrainResult(metrics, best_path, history_path)
    return publish(work_dir, out_dir, metrics)


def read_history(path: Path) -> list[dict]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    # After a resume CSVLogger appends; keep the last row per epoch.
    by_epoch = {int(row["epoch"]): row for row in rows}
    return [by_epoch[e] for e in sorted(by_epoch)]


def publish(work_dir: Path, out_dir: Path, metrics: dict) -> TrainResult:
    """Copy the finished results into the stage outputs, then drop the work folder."""
    from inspectcnn.dvc_outputs import write_split_metrics, write_table

    interrupts.check()  # never publish after a Ctrl-C, even one whose KeyboardInterrupt was swallowed
    model_path, history_path = out_dir / "model.keras", out_dir / "history.csv"
    rows = read_history(work_dir / "history.csv")
    for row in rows:
        row["epoch"] = int(row["epoch"]) + 1  # 1-based in the outputs
    with interrupts.deferred():  # all of the outputs or none: a Ctrl-C here is raised once they are written
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / ".model.keras.tmp"
        shutil.copyfile(work_dir / "best.keras", tmp)
        os.replace(tmp, model_path)
        write_table(history_path, rows)
        write_split_metrics(out_dir, metrics)
    shutil.rmtree(work_dir, ignore_errors=True)
    return TrainResult(metrics, model_path, history_path)
