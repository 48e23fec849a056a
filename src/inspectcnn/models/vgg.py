"""VGG family (Simonyan and Zisserman 2015) from one spec-driven builder; layer names as keras.applications."""

from functools import partial

from keras import layers

from inspectcnn.models.blocks import adaptive_average_pool, binary_head, features, model, scaled
from inspectcnn.models.registry import register

# (convolutions, channels) per block
VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
VGG13 = ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512))
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG19 = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))


def vgg_base(x, spec, width: float = 1.0):
    for block, (convs, channels) in enumerate(spec, 1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(scaled(channels, width), 3, padding="same", activation="relu",
                              name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    return x


def build(input_shape, *, spec=VGG16, name: str = "vgg16", width: float = 1.0):
    """The notes' VGG-16 head: adaptive pool 7x7, 25088-4096-4096-256-1, dropouts 0.5/0.5/0.4."""
    inputs = layers.Input(input_shape, name="image")
    x = features(vgg_base(inputs, spec, width))
    x = adaptive_average_pool(x, 7)
    x = layers.Flatten(name="flatten")(x)
    hidden = (scaled(4096, width), scaled(4096, width), scaled(256, width))
    return model(inputs, binary_head(x, hidden, (0.5, 0.5, 0.4)), name)


vgg11 = partial(build, spec=VGG11, name="vgg11")
vgg13 = partial(build, spec=VGG13, name="vgg13")
vgg16 = partial(build, spec=VGG16, name="vgg16")
vgg19 = partial(build, spec=VGG19, name="vgg19")

register("vgg11", vgg11, family="vgg", native_size=224, min_size=32)
register("vgg13", vgg13, family="vgg", native_size=224, min_size=32)
register("vgg16", vgg16, family="vgg", native_size=224, min_size=32)
register("vgg19", vgg19, family="vgg", native_size=224, min_size=32)
