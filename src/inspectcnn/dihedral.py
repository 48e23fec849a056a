"""The 8 symmetries of a square cell (the dihedral group D4: rotations by 90 degrees and mirror images).

A solar cell, like most inspection crops, has no preferred orientation: a crack rotated by 90 degrees
or mirrored is still a crack. The project uses the 8 views three ways, all defined here so that
they agree:

- training: a random view per image (:func:`random_views`, in the input pipeline);
- cached-feature training: the frozen part of a network is run once on each view (:func:`view`);
- test-time augmentation: :func:`tta_model` wraps a trained model into one that averages its
  probabilities over the views. It is built from stock Keras layers only (``Permute`` for the
  transpose, a fixed 0/1 ``Dense`` for a mirror, ``Average``), so the saved model loads with
  ``safe_mode=True`` and no custom objects, in ``inspectcnn predict``, ``mlflow models serve`` and
  any export alike: what is served is exactly what was evaluated.

View ``k`` (0-7) is the bit triple (transpose, mirror rows, mirror columns) = (k >> 2, (k >> 1) & 1, k & 1)
applied in that order; view 0 is the image itself.
"""

from __future__ import annotations

import numpy as np

TTA_VIEWS = {"none": (0,), "flips": (0, 1, 2, 3), "dihedral": tuple(range(8))}


def bits(k: int) -> tuple[int, int, int]:
    if not 0 <= k < 8:
        raise ValueError(f"dihedral view {k}: there are 8 views, 0-7")
    return k >> 2, (k >> 1) & 1, k & 1


def view(images: np.ndarray, k: int) -> np.ndarray:
    """View ``k`` of a batch (B, H, W, C) of square images, in NumPy."""
    transpose, rows, columns = bits(k)
    if transpose:
        images = np.swapaxes(images, 1, 2)
    if rows:
        images = images[:, ::-1]
    if columns:
        images = images[:, :, ::-1]
    return np.ascontiguousarray(images)


def random_views(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random one of the 8 views of each image of a NumPy batch (B, S, S, C), for the training input."""
    draws = rng.integers(0, 8, size=len(images))
    out = np.empty_like(images)
    for k in np.unique(draws):
        chosen = draws == k
        out[chosen] = view(images[chosen], int(k))
    return out


def _mirror(x, axis: int, size: int, name: str):
    """Reverse spatial ``axis`` (1 rows, 2 columns) with stock layers: move it last, multiply by the
    exchange matrix (a 0/1 permutation: exact in float32), move it back."""
    import keras

    order = (1, 3, 2) if axis == 2 else (3, 2, 1)  # Permute dims count from 1 (batch excluded)
    x = keras.layers.Permute(order, name=f"{name}_to_last", dtype="float32")(x)
    dense = keras.layers.Dense(size, use_bias=False, trainable=False, name=f"{name}_reverse", dtype="float32")
    x = dense(x)
    dense.set_weights([np.eye(size, dtype="float32")[::-1]])
    return keras.layers.Permute(order, name=f"{name}_back", dtype="float32")(x)


def tta_model(model, mode: str):
    """``model`` itself for ``mode`` none; else a model with the same input and output whose output is the
    mean probability over the views of ``mode`` (flips: 4 mirror images; dihedral: all 8); a model of several
    outputs gets each averaged."""
    import keras

    if mode not in TTA_VIEWS:
        raise ValueError(f"unknown test-time augmentation {mode!r}; use one of {', '.join(TTA_VIEWS)}")
    if mode == "none":
        return model
    height, width = (int(d) for d in model.input.shape[1:3])
    if height != width:
        raise ValueError(f"test-time augmentation needs square inputs; the model takes {height}x{width}")
    inputs = keras.layers.Input(model.input.shape[1:], name="image")
    outputs = []
    for k in TTA_VIEWS[mode]:
        transpose, rows, columns = bits(k)
        x = inputs
        if transpose:
            x = keras.layers.Permute((2, 1, 3), name=f"view{k}_transpose", dtype="float32")(x)
        if rows:
            x = _mirror(x, 1, height, f"view{k}_rows")
        if columns:
            x = _mirror(x, 2, width, f"view{k}_columns")
        outputs.append(model(x))
    if not isinstance(outputs[0], (list, tuple)):
        mean = keras.layers.Average(name="tta_mean", dtype="float32")(outputs)
        return keras.Model(inputs, mean, name=f"{model.name}_tta_{mode}")
    # a model of several outputs (the probability and the features): each averaged over the views
    means = [keras.layers.Average(name="tta_mean" if i == 0 else f"tta_mean{i}", dtype="float32")(
        [views[i] for views in outputs]) for i in range(len(outputs[0]))]
    return keras.Model(inputs, means, name=f"{model.name}_tta_{mode}")
