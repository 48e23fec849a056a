"""GoogLeNet (Szegedy et al. 2015): stem, nine Inception blocks in three groups, global average pooling."""

from keras import layers

from inspectcnn.models.blocks import binary_head, features, model, scaled
from inspectcnn.models.registry import register

# Inception block: (1x1, (1x1 reduce, 3x3), (1x1 reduce, 5x5), pool-projection 1x1), as in d2l / Szegedy et al.
GROUPS = (
    ((64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64)),
    (
        (192, (96, 208), (16, 48), 64),
        (160, (112, 224), (24, 64), 64),
        (128, (128, 256), (24, 64), 64),
        (112, (144, 288), (32, 64), 64),
        (256, (160, 320), (32, 128), 128),
    ),
    ((256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)),
)


def _conv(x, filters, kernel, name, strides=1):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", activation="relu", name=name)(x)


def inception(x, spec, width: float, name: str):
    """Four parallel branches concatenated on channels: 1x1; 1x1->3x3; 1x1->5x5; 3x3 max-pool->1x1."""
    c1, (c2r, c2), (c3r, c3), c4 = spec
    w = lambda c: scaled(c, width)  # noqa: E731
    b1 = _conv(x, w(c1), 1, f"{name}_b1_1x1")
    b2 = _conv(_conv(x, w(c2r), 1, f"{name}_b2_1x1"), w(c2), 3, f"{name}_b2_3x3")
    b3 = _conv(_conv(x, w(c3r), 1, f"{name}_b3_1x1"), w(c3), 5, f"{name}_b3_5x5")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b4_pool")(x)
    b4 = _conv(b4, w(c4), 1, f"{name}_b4_1x1")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def build(input_shape, *, width: float = 1.0):
    inputs = layers.Input(input_shape, name="image")
    x = _conv(inputs, scaled(64, width), 7, "stem_conv1", strides=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool1")(x)
    x = _conv(x, scaled(64, width), 1, "stem_conv2")
    x = _conv(x, scaled(192, width), 3, "stem_conv3")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool2")(x)
    for g, group in enumerate(GROUPS, 3):
        for b, spec in enumerate(group):
            x = inception(x, spec, width, name=f"inception{g}{'abcde'[b]}")
        if g < 5:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"group{g}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(features(x))
    return model(inputs, binary_head(x), "googlenet")

register("googlenet", build, family="inception", native_size=224, min_size=1)  # same-padded strides
