"""AlexNet as listed in the notes (section 6.1), with adaptive average pooling to 6x6 and a sigmoid unit."""

from keras import layers

from inspectcnn.models.blocks import adaptive_average_pool, binary_head, features, model, scaled
from inspectcnn.models.registry import register

# (filters, kernel, stride, max-pool after)
LAYERS = ((64, 11, 4, True), (192, 5, 1, True), (384, 3, 1, False), (256, 3, 1, False), (256, 3, 1, True))


def build(input_shape, *, width: float = 1.0):
    inputs = x = layers.Input(input_shape, name="image")
    for i, (filters, kernel, stride, pool) in enumerate(LAYERS, 1):
        # Stride-1 convolutions keep the size (padding k // 2 = "same"); the first pads 2 by hand.
        if stride > 1:
            x = layers.ZeroPadding2D(2, name=f"conv{i}_pad")(x)
        padding = "valid" if stride > 1 else "same"
        x = layers.Conv2D(scaled(filters, width), kernel, strides=stride, padding=padding, activation="relu",
                          name=f"conv{i}")(x)
        if pool:
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{i}")(x)
    x = adaptive_average_pool(features(x), 6)
    x = layers.Flatten(name="flatten")(x)
    hidden = (scaled(4096, width), scaled(4096, width))
    return model(inputs, binary_head(x, hidden, (0.5, 0.5, 0.0)), "alexnet")

register("alexnet", build, family="alexnet", native_size=224, min_size=63)
