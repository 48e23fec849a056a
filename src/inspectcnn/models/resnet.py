"""ResNet-18/34 (basic blocks) and ResNet-50 (bottleneck), He et al. 2016.

Stem, names and biases follow keras.applications.ResNet50, so ResNet-50's base matches it
parameter for parameter; 18 and 34 use the same conventions with basic two-convolution blocks.
"""

from functools import partial

from keras import layers

from inspectcnn.models.blocks import BN_EPSILON, binary_head, features, model, scaled
from inspectcnn.models.registry import register

CHANNELS = (64, 128, 256, 512)
RESNET18 = ("basic", (2, 2, 2, 2))
RESNET34 = ("basic", (3, 4, 6, 3))
RESNET50 = ("bottleneck", (3, 4, 6, 3))


def _bn(x, name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)(x)


def _shortcut(x, channels: int, stride: int, name: str):
    """Identity when the shape is kept; otherwise a strided 1x1 convolution + BN."""
    if stride == 1 and x.shape[-1] == channels:
        return x
    x = layers.Conv2D(channels, 1, strides=stride, name=f"{name}_0_conv")(x)
    return _bn(x, f"{name}_0_bn")


def basic_block(x, channels: int, stride: int, name: str):
    shortcut = _shortcut(x, channels, stride, name)
    x = layers.Conv2D(channels, 3, strides=stride, padding="same", name=f"{name}_1_conv")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    x = layers.Conv2D(channels, 3, padding="same", name=f"{name}_2_conv")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, _bn(x, f"{name}_2_bn")])
    return layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, channels: int, stride: int, name: str):
    """1x1 reduce (strided, as keras.applications) -> 3x3 -> 1x1 expand to 4 x channels."""
    shortcut = _shortcut(x, 4 * channels, stride, name)
    x = layers.Conv2D(channels, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    x = layers.Conv2D(channels, 3, padding="same", name=f"{name}_2_conv")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(_bn(x, f"{name}_2_bn"))
    x = layers.Conv2D(4 * channels, 1, name=f"{name}_3_conv")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, _bn(x, f"{name}_3_bn")])
    return layers.Activation("relu", name=f"{name}_out")(x)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def resnet_base(x, spec, width: float = 1.0):
    kind, depths = spec
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(scaled(64, width), 7, strides=2, name="conv1_conv")(x)
    x = layers.Activation("relu", name="conv1_relu")(_bn(x, "conv1_bn"))
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (depth, channels) in enumerate(zip(depths, CHANNELS), 2):
        for block in range(1, depth + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            x = BLOCKS[kind](x, scaled(channels, width), stride, name=f"conv{stage}_block{block}")
    return x


def build(input_shape, *, spec=RESNET50, name: str = "resnet50", width: float = 1.0):
    inputs = layers.Input(input_shape, name="image")
    x = features(resnet_base(inputs, spec, width))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return model(inputs, binary_head(x), name)


resnet18 = partial(build, spec=RESNET18, name="resnet18")
resnet34 = partial(build, spec=RESNET34, name="resnet34")
resnet50 = partial(build, spec=RESNET50, name="resnet50")

register("resnet18", resnet18, family="resnet", native_size=224, min_size=1)  # same-padded strides
register("resnet34", resnet34, family="resnet", native_size=224, min_size=1)  # same-padded strides
register("resnet50", resnet50, family="resnet", native_size=224, min_size=1)  # same-padded strides
