"""LeNet-5 (LeCun et al. 1998), as usually taught: 6@5x5 pad 2, avg-pool, 16@5x5, avg-pool, FC 120-84-1."""

from keras import layers

from inspectcnn.models.blocks import binary_head, features, model, scaled
from inspectcnn.models.registry import register


def build(input_shape, *, width: float = 1.0):
    inputs = layers.Input(input_shape, name="image")
    x = layers.Conv2D(scaled(6, width), 5, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.AveragePooling2D(2, strides=2, name="pool1")(x)
    x = layers.Conv2D(scaled(16, width), 5, activation="relu", name="conv2")(x)
    x = layers.AveragePooling2D(2, strides=2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(features(x))
    return model(inputs, binary_head(x, (scaled(120, width), scaled(84, width))), "lenet")

register("lenet", build, family="lenet", native_size=32, min_size=12)
