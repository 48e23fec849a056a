"""Shared building blocks: plain functions ``(x, ..., name) -> x`` whose layers are named after ``name``."""

from __future__ import annotations

import keras
from keras import layers

BN_EPSILON = 1.001e-5  # as keras.applications, so parameter counts and weights line up


def scaled(channels: int, width: float) -> int:
    """Channel (or unit) count under a width multiplier; never below 1."""
    return max(1, int(round(channels * width)))


def features(x):
    """Marks the end of the convolutional base (for summaries, base extraction and Grad-CAM)."""
    return layers.Identity(name="features")(x)


def binary_head(x, hidden: tuple[int, ...] = (), dropouts: tuple[float, ...] = (), *, name: str = "fc"):
    """Dense hidden layers (ReLU, optional dropout after each) then one sigmoid unit.

    ``dropouts`` has one entry per hidden layer, or one more: then the first is applied before
    the first hidden layer (AlexNet's classifier starts with dropout).
    """
    if len(dropouts) == len(hidden) + 1:
        x = layers.Dropout(dropouts[0], name=f"{name}_dropout0")(x)
        dropouts = dropouts[1:]
    for i, units in enumerate(hidden, 1):
        x = layers.Dense(units, activation="relu", name=f"{name}{i}")(x)
        if i <= len(dropouts) and dropouts[i - 1]:
            x = layers.Dropout(dropouts[i - 1], name=f"{name}{i}_dropout")(x)
    # float32 output even under mixed precision: a float16 sigmoid saturates and breaks the loss.
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="predictions")(x)


def adaptive_average_pool(x, size: int, name: str = "avgpool"):
    """PyTorch's AdaptiveAvgPool2d: a fixed size x size grid whatever the input size.

    Keras' layer only shrinks; an input smaller than the grid is repeated up to it, as PyTorch does.
    """
    if x.shape[1] >= size and x.shape[2] >= size:
        return layers.AdaptiveAveragePooling2D((size, size), name=name)(x)
    resize = layers.Resizing(size, size, interpolation="nearest", name=name)
    # XLA has no kernel for this resize's gradient (ResizeNearestNeighborGrad): tell Keras, so that
    # jit_compile="auto" (XLA on a GPU) leaves such a model uncompiled instead of failing.
    resize.supports_jit = False
    return resize(x)


def model(inputs, outputs, name: str) -> keras.Model:
    return keras.Model(inputs, outputs, name=name)
