"""Training a transfer model: one loop over its phases (:func:`phases`), each a number of epochs at a learning
rate with the base trainable from a layer on (or not at all), run on images or on cached views.

Resumable like from-scratch training: the work folder keeps each phase's BackupAndRestore state, the cached
features and a marker of the completed head-only phase; a killed run picks up from its last completed
epoch (of either phase) and does not compute the cached features again.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from inspectcnn.artifacts import ModelFolder
from inspectcnn.config import Params, TransferConfig
from inspectcnn.models.saving import load_model
from inspectcnn.transfer.cache import ViewBatches, cache_views, extract_features, load_or_compute
from inspectcnn.transfer.surgery import build_transfer_model, head_model, set_trainable, split_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phase:
    """One phase of a transfer run: ``epochs`` at ``learning_rate``; the base trains from ``trainable_from``
    on (None: the base is frozen, the head alone trains)."""

    name: str
    epochs: int
    learning_rate: float
    trainable_from: str | None
    first_epoch: int


def phases(config: TransferConfig) -> list[Phase]:
    """The phases of ``config``, in order (those of 0 epochs left out). A new phase is one more entry."""
    listed = [
        Phase("frozen", config.frozen_epochs, config.learning_rate, None, 0),
        Phase("finetune", config.finetune_epochs, config.finetune_learning_rate, config.finetune_layer,
              config.frozen_epochs),
    ]
    return [phase for phase in listed if phase.epochs]


def compile_phase(model: keras.Model, learning_rate: float, config: TransferConfig | None = None,
                  steps: int = 0) -> None:
    """Adam (AdamW when ``weight_decay`` > 0) at ``learning_rate``, decayed by a cosine over the phase's
    ``steps`` when ``schedule: cosine`` (the optimizer of :mod:`inspectcnn.training.optim`)."""
    from inspectcnn.training import compile_binary
    from inspectcnn.training.optim import build_optimizer

    decay = config.weight_decay if config is not None else 0.0
    smoothing = config.label_smoothing if config is not None else 0.0
    compile_binary(model, build_optimizer("adamw" if decay else "adam", learning_rate,
                                          schedule=config.schedule if config is not None else "constant",
                                          steps=steps, weight_decay=decay,
                                          ema_momentum=config.ema_momentum if config is not None else None),
                   loss=keras.losses.BinaryCrossentropy(label_smoothing=smoothing))


@dataclass
class _Run:
    """What every phase of one transfer run shares."""

    name: str
    config: TransferConfig
    prepared_dir: Path
    work_dir: Path
    seed: int
    run: object
    load: dict
    weights: dict | None
    steps: int
    train_count: int
    timings: dict = field(default_factory=dict)

    @property
    def history_path(self) -> Path:
        return ModelFolder(self.work_dir).history

    @property
    def best_path(self) -> Path:
        return self.work_dir / "best.keras"

    @property
    def diverged(self) -> str:
        return (f"transfer.{self.name}: the loss became NaN/inf in epoch {{epoch}} - lower the learning rates; "
                "no model was saved")

    def callbacks(self, meter, phase: str, nan_guard, checkpoint=None):
        from inspectcnn import training

        return training.phase_callbacks(self.work_dir / f"backup-{phase}", self.history_path, meter, nan_guard,
                                        checkpoint=checkpoint, run=self.run,
                                        averaged=self.config.ema_momentum is not None)

    def checkpoint(self, path: Path, weights_only: bool = False):
        """Keeps the best epoch so far (of every phase: the history's best is the bar to beat)."""
        from inspectcnn import training

        mode = training.monitor_mode(self.config.monitor)
        best = training.best_so_far(self.history_path, self.config.monitor, mode)
        return keras.callbacks.ModelCheckpoint(str(path), monitor=self.config.monitor, mode=mode,
                                               save_best_only=True, save_weights_only=weights_only,
                                               initial_value_threshold=best)

    def split(self, split: str, **extra):
        from inspectcnn.data.dataset import load_split

        return load_split(self.prepared_dir, split, **self.load, **extra)

    def train_images(self):
        return self.split("train", shuffle=True, augment=self.config.augment, seed=self.seed)


def _phase_on_images(state: _Run, model: keras.Model, phase: Phase, val_data) -> tuple[keras.Model, list[str]]:
    """One phase on the images (augmented on the fly); a head-only phase on cached pooled features when the
    config caches them. Returns the model (reloaded when the phase had completed before) and its trainable
    base layers."""
    from inspectcnn import training
    from inspectcnn.training import NanGuard, ThroughputMeter

    config, frozen_path = state.config, state.work_dir / "frozen.keras"
    if phase.trainable_from is None and frozen_path.is_file():
        log.info("transfer %s: phase %s already complete in %s, resuming", state.name, phase.name, state.work_dir)
        return load_model(frozen_path), []
    trainable = set_trainable(model, phase.trainable_from, state.config.batchnorm)
    compile_phase(model, phase.learning_rate, config, state.steps * phase.epochs)
    checkpoint = state.checkpoint(state.best_path) if phase.trainable_from is not None else None
    begin = time.perf_counter()
    meter, nan_guard = ThroughputMeter(state.train_count), NanGuard()
    loop = dict(epochs=(phase.first_epoch, phase.first_epoch + phase.epochs), nan_guard=nan_guard,
                callbacks=state.callbacks(meter, phase.name, nan_guard, checkpoint), work_dir=state.work_dir,
                diverged=state.diverged, class_weight=state.weights)
    if phase.trainable_from is None and config.uses_cached_features:
        x_train, y_train, x_val, y_val = load_or_compute(
            state.work_dir / "features.npz",
            lambda: (*extract_features(model, state.split("train")), *extract_features(model, val_data)),
            state.timings)
        head_only = head_model(model)
        compile_phase(head_only, phase.learning_rate, config, state.steps * phase.epochs)
        training.fit_phase(head_only, x_train, y=y_train, validation=(x_val, y_val),
                           batch_size=state.load["batch_size"], **loop)
    else:
        training.fit_phase(model, state.train_images(), validation=val_data, shuffle=False, **loop)
    _phase_timings(state, phase, begin, meter)
    if phase.trainable_from is None:
        model.save(state.best_path)
        tmp = state.work_dir / ".frozen.tmp.keras"
        model.save(tmp)
        tmp.replace(frozen_path)  # the head-only phase is complete only once this file exists
    return model, trainable


def _phase_timings(state: _Run, phase: Phase, begin: float, meter) -> None:
    state.timings[f"{phase.name}_phase_s"] = round(time.perf_counter() - begin, 2)
    if phase.trainable_from is not None:
        state.timings[f"{phase.name}_images_per_s"] = round(meter.images_per_s, 2)


class _Views:
    """The cached-views form of a transfer model on a sequential base: the base below ``finetune_from`` runs
    once per view of each training image (and once per validation image); the layers above it (``upper``)
    train on random cached views. The same training as on the fly with those layers frozen and the
    augmentation drawing one of ``config.augment.views`` per image, at a fraction of the cost."""

    def __init__(self, state: _Run, model: keras.Model):
        from inspectcnn.data.store import read_meta

        config = state.config
        self.lower, self.upper = split_model(model, config.finetune_layer)
        counts = {split: int(read_meta(state.prepared_dir)["splits"][split]["count"]) for split in ("train", "val")}
        self.x_train, self.y_train, x_val, y_val = load_or_compute(
            state.work_dir / "views.npz",
            lambda: (*cache_views(self.lower, state.split("train"), config.augment.views, counts["train"]),
                     *cache_views(self.lower, state.split("val"), (0,), counts["val"])),
            state.timings)
        log.info("cached %s views of %d training images at %s", len(config.augment.views), len(self.x_train),
                 self.x_train.shape[2:])
        self.val = (x_val[:, 0].astype("float32"), y_val)
        self.best_weights = state.work_dir / "best.weights.h5"

    def phase(self, state: _Run, model: keras.Model, phase: Phase) -> list[str]:
        """One phase on random cached views; the trainable base layers."""
        from inspectcnn import training
        from inspectcnn.training import NanGuard, ThroughputMeter

        frozen_weights = state.work_dir / "frozen.weights.h5"
        if phase.trainable_from is None and frozen_weights.is_file():
            self.upper.load_weights(frozen_weights)
            return []
        # the cut is the first trainable layer: a fine-tuning phase trains every layer of upper
        trainable = set_trainable(model, phase.trainable_from, state.config.batchnorm)
        compile_phase(self.upper, phase.learning_rate, state.config, state.steps * phase.epochs)
        checkpoint = (state.checkpoint(self.best_weights, weights_only=True) if phase.trainable_from is not None
                      else None)
        begin = time.perf_counter()
        meter, nan_guard = ThroughputMeter(len(self.x_train)), NanGuard()
        batches = ViewBatches(self.x_train, self.y_train, state.load["batch_size"], state.seed, state.weights)
        training.fit_phase(self.upper, batches, validation=self.val,
                           epochs=(phase.first_epoch, phase.first_epoch + phase.epochs),
                           callbacks=state.callbacks(meter, phase.name, nan_guard, checkpoint), nan_guard=nan_guard,
                           work_dir=state.work_dir, diverged=state.diverged, shuffle=False)
        _phase_timings(state, phase, begin, meter)
        if phase.trainable_from is None:
            self.upper.save_weights(self.best_weights)
            self.upper.save_weights(state.work_dir / ".frozen.tmp.weights.h5")
            (state.work_dir / ".frozen.tmp.weights.h5").replace(frozen_weights)
        return trainable

    def finish(self, state: _Run, model: keras.Model) -> None:
        """The model gets the best epoch's weights (its layers are upper's). The optimizer's state is left
        out: a best epoch of the frozen phase was saved beside another optimizer than fine-tuning's."""
        self.upper.load_weights(self.best_weights,
                                objects_to_skip=[self.upper.optimizer] if self.upper.optimizer else None)
        model.save(state.best_path)


def run_transfer(name: str, config: TransferConfig, prepared_dir: Path, out_dir: Path, *, seed: int,
                 run=None, work_dir: Path):
    """Every phase of ``config``; writes model.keras, history.csv and metrics.json like the training stage
    (its :class:`inspectcnn.training.TrainResult`)."""
    from inspectcnn import training
    from inspectcnn.data.store import read_meta

    meta = read_meta(prepared_dir)
    channels = int(meta["channels"])
    run_time = training.setup(seed=seed, deterministic=config.deterministic, mixed_precision=config.mixed_precision,
                              strategy=config.strategy)  # mirrored over every GPU with "auto" (tf.distribute / keras.distribution)
    replicas = run_time.replicas
    with run_time.strategy.scope():  # models, optimizers and reloaded checkpoints all live in the strategy
        model = build_transfer_model(config, channels)
        set_trainable(model, config.finetune_layer, config.batchnorm)  # validates the layer name before any training
        set_trainable(model, None)
        work_dir.mkdir(parents=True, exist_ok=True)
        train_count = int(meta["splits"]["train"]["count"])
        state = _Run(name, config, prepared_dir, work_dir, seed, run,
                     load=dict(image_size=config.image_size, batch_size=config.batch_size * replicas, channels=channels,
                               shard=run_time.strategy.shard),
                     weights=(training.class_weights(training.train_labels(prepared_dir))
                              if config.class_weight == "balanced" else None),
                     steps=math.ceil(train_count / (config.batch_size * replicas)), train_count=train_count)
        started = time.perf_counter()
        trainable: list[str] = []
        with training.runtime.peers_alive(f"transfer.{name}"):
            if config.cache_mode == "views":
                views = _Views(state, model)
                for phase in phases(config):
                    trainable = views.phase(state, model, phase)
                views.finish(state, model)
            else:
                val_data = state.split("val")
                for phase in phases(config):
                    model, trainable = _phase_on_images(state, model, phase, val_data)
        return _publish(state, model, trainable, run_time.policy, time.perf_counter() - started, out_dir)


def _publish(state: _Run, model: keras.Model, trainable: list[str], policy: str, wall: float, out_dir: Path):
    from inspectcnn import training
    from inspectcnn.training import TrainingError

    config = state.config
    rows = training.read_history(state.history_path)
    if any(not math.isfinite(float(r["loss"])) for r in rows):
        raise TrainingError(f"transfer.{state.name}: the loss became NaN - lower the learning rates; no model was saved")
    best_row, summary = training.summarize(rows, config.monitor)
    metrics = {
        "best_epoch": summary.pop("best_epoch"),
        "best_phase": "frozen" if int(best_row["epoch"]) < config.frozen_epochs else "finetune",
        **summary,
        **state.timings,
        "wall_time_s": round(wall, 2),
        "params": int(model.count_params()),
        "finetuned_layers": len(trainable),
        "image_size": config.image_size,
        "precision_policy": policy,
        "cached_features": config.cache_mode,
        "augment_views": len(config.augment.views or ()) or None,
    }
    return training.publish(state.work_dir, out_dir, metrics)


def run(name: str, params: Params, prepared_dir: Path, out_dir: Path) -> dict:
    """The `transfer@<name>` stage: one transfer entry inside its MLflow run; its metrics."""
    from inspectcnn.data.store import read_meta
    from inspectcnn.training import work_dir as work_folder
    from inspectcnn.training.tracked import tracked

    config = params.transfer_config(name)
    meta = read_meta(prepared_dir)
    work_dir = work_folder(f"transfer-{name}", params.seed, config)
    return tracked(f"transfer@{name}", "transfer", name, config, params, meta, out_dir,
                   lambda run: run_transfer(name, config, prepared_dir, out_dir, seed=params.seed, run=run,
                                            work_dir=work_dir),
                   prepared=prepared_dir)
