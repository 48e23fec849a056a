"""Grad-CAM (Selvaraju et al. 2017): where the network looked, from the `features` layer's gradients."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def gradcam(model: keras.Model, image: np.ndarray, layer: str = "features") -> np.ndarray:
    """Heat map in [0, 1] of the input's height x width for one image (H, W, C) in [0, 1].

    Channel weights are the spatially averaged gradients of the defect logit with respect to
    ``layer``'s feature maps; the map is the ReLU of their weighted sum, upsampled. The logit, not
    the probability: a saturated sigmoid (p = 1.00) has no gradient left to show.
    """
    output = model.get_layer("predictions")
    grad_model = keras.Model(model.inputs, [model.get_layer(layer).output, output.input])
    batch = tf.convert_to_tensor(image[None].astype("float32"))
    with tf.GradientTape() as tape:
        maps, hidden = grad_model(batch, training=False)
        score = tf.matmul(tf.cast(hidden, tf.float32), output.kernel)[:, 0] + output.bias[0]
    gradients = tape.gradient(score, maps)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(maps * weights, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, image.shape[:2], method="bilinear")[0, :, :, 0].numpy()
    peak = float(cam.max())
    return cam / peak if peak > 0 else cam
