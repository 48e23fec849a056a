"""The notes' self-designed CNN (section 5): 64@3x3, max-pool, 32@3x3, max-pool, FC 64, dropout 0.5, FC 1."""

from keras import layers

from inspectcnn.models.blocks import binary_head, features, model, scaled
from inspectcnn.models.registry import register


def build(input_shape, *, width: float = 1.0):
    inputs = layers.Input(input_shape, name="image")
    x = layers.Conv2D(scaled(64, width), 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, strides=2, name="pool1")(x)
    x = layers.Conv2D(scaled(32, width), 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, strides=2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(features(x))
    return model(inputs, binary_head(x, (scaled(64, width),), (0.5,)), "simple_cnn")

register("simple_cnn", build, family="simple", native_size=32, min_size=10)
