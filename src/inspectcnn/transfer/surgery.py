"""Model surgery: the transfer model (image -> preprocess -> base -> pooled features -> head), which layers
train, and the sub-models that share its layers (the head alone; the parts below and above a layer)."""

from __future__ import annotations

import keras
from keras import layers

from inspectcnn.backbones import BACKBONES
from inspectcnn.config import TransferConfig
from inspectcnn.transfer.base import TransferError, load_base, preprocess


def build_transfer_model(config: TransferConfig, channels: int, base: keras.Model | None = None) -> keras.Model:
    """image [0, 1] -> (gray to RGB) -> preprocess -> base -> GAP -> head -> sigmoid. Which base layers train,
    BatchNorm included, is :func:`set_trainable`'s to say."""
    base = base or load_base(config)
    inputs = layers.Input((config.image_size, config.image_size, channels), name="image")
    x = layers.Concatenate(name="gray_to_rgb")([inputs] * 3) if channels == 1 else inputs
    x = preprocess(x, BACKBONES[config.backbone].preprocessing)
    # no training=False here: Keras 3 passes the outer call's training flag to every layer of a nested
    # model, so it would be overridden during fit; a frozen BatchNorm is a non-trainable one (set_trainable)
    x = base(x)
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


def set_trainable(model: keras.Model, finetune_from: str | None, batchnorm: str = "frozen") -> list[str]:
    """Freeze the base before ``finetune_from``, train it from there on; returns the trainable base layers.
    ``batchnorm: frozen`` keeps every BatchNormalization layer of the base non-trainable, which in Keras 3
    also means inference mode (its pretrained statistics, never updated); ``train`` lets those from
    ``finetune_from`` on learn their scale and offset and normalise with each batch's statistics."""
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
        frozen_norm = batchnorm == "frozen" and isinstance(layer, layers.BatchNormalization)
        layer.trainable = index >= start and not frozen_norm
    return [layer.name for layer in base.layers[start:] if layer.weights and layer.trainable]


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
