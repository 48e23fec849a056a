"""Grad-CAM (Selvaraju et al. 2017): where the network looked, from the `features` layer's gradients.

Everything is Keras ops but the gradient itself, which each backend takes its own way (:func:`_gradient`:
``tf.GradientTape``, ``jax.grad``, ``torch.autograd``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _gradient(score_of, maps):
    """d score_of(maps) / d maps for a scalar-valued function of a tensor, in the backend in force."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(maps)
            score = score_of(maps)
        return tape.gradient(score, maps)
    if backend == "jax":
        import jax

        return jax.grad(score_of)(maps)
    if backend == "torch":
        import torch

        maps = maps.detach().requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(score_of(maps), maps)
        return gradient
    raise NotImplementedError(f"Grad-CAM has no gradient for the {backend} backend")


def _logit_of_features(model: keras.Model, layer: str):
    """A function from ``layer``'s output to the summed defect logit: the graph between them, with the
    output layer's activation left out (the logit, not the probability: a saturated sigmoid has no
    gradient left to show)."""
    output = model.get_layer("predictions")
    tail = keras.Model(model.get_layer(layer).output, output.input)

    def score(maps):
        hidden = ops.cast(tail(maps, training=False), "float32")
        logit = ops.matmul(hidden, ops.cast(output.kernel, "float32")) + ops.cast(output.bias, "float32")
        return ops.sum(logit[:, 0])

    return score


def gradcam(model: keras.Model, image: np.ndarray, layer: str = "features") -> np.ndarray:
    """Heat map in [0, 1] of the input's height x width for one image (H, W, C) in [0, 1].

    Channel weights are the spatially averaged gradients of the defect logit with respect to
    ``layer``'s feature maps; the map is the ReLU of their weighted sum, upsampled.
    """
    features = keras.Model(model.inputs, model.get_layer(layer).output)
    maps = features(ops.convert_to_tensor(image[None].astype("float32")), training=False)
    gradients = _gradient(_logit_of_features(model, layer), maps)
    weights = ops.mean(ops.cast(gradients, "float32"), axis=(1, 2), keepdims=True)
    cam = ops.relu(ops.sum(ops.cast(maps, "float32") * weights, axis=-1, keepdims=True))
    cam = ops.image.resize(cam, image.shape[:2], interpolation="bilinear")
    cam = ops.convert_to_numpy(cam)[0, :, :, 0]
    peak = float(cam.max())
    return cam / peak if peak > 0 else cam
