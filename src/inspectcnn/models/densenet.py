"""DenseNet-121 (Huang et al. 2017): dense blocks of BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 with growth
rate 32, transitions of 1x1 convolution + 2x2 average pooling with compression 0.5.

Names and layout follow keras.applications.DenseNet121, so the base matches it exactly.
"""

from functools import partial

from keras import layers

from inspectcnn.models.blocks import BN_EPSILON, binary_head, features, model, scaled
from inspectcnn.models.registry import register

DENSENET121 = (6, 12, 24, 16)
GROWTH_RATE = 32
COMPRESSION = 0.5


def _bn_relu(x, name):
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def dense_layer(x, growth: int, name: str):
    """One layer of a dense block: its ``growth`` new feature maps are concatenated to its input."""
    y = _bn_relu(x, f"{name}_0")
    y = layers.Conv2D(4 * growth, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = _bn_relu(y, f"{name}_1")
    y = layers.Conv2D(growth, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def transition(x, compression: float, name: str):
    x = _bn_relu(x, name)
    x = layers.Conv2D(int(x.shape[-1] * compression), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def densenet_base(x, blocks=DENSENET121, width: float = 1.0, growth: int = GROWTH_RATE):
    growth = scaled(growth, width)
    x = layers.ZeroPadding2D(3, name="zero_padding2d")(x)
    x = layers.Conv2D(2 * growth, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="zero_padding2d_1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, depth in enumerate(blocks, 2):
        for i in range(1, depth + 1):
            x = dense_layer(x, growth, name=f"conv{stage}_block{i}")
        if stage < len(blocks) + 1:
            x = transition(x, COMPRESSION, name=f"pool{stage}")
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="bn")(x)
    return layers.Activation("relu", name="relu")(x)


def build(input_shape, *, blocks=DENSENET121, name: str = "densenet121", width: float = 1.0):
    inputs = layers.Input(input_shape, name="image")
    x = features(densenet_base(inputs, blocks, width))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return model(inputs, binary_head(x), name)


densenet121 = partial(build, blocks=DENSENET121, name="densenet121")

register("densenet121", densenet121, family="densenet", native_size=224, min_size=29)
