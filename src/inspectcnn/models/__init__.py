"""The model zoo: the classic convolutional networks (LeNet to DenseNet), built by name.

To add an architecture: write a module with a builder ``(input_shape, *, width=1.0) -> keras.Model``,
end it with ``register(name, builder, family=..., native_size=..., min_size=...)`` and import the
module below.
"""

# Importing a module registers its architectures (with their metadata) in this order.
from inspectcnn.models import lenet, simple_cnn, alexnet, vgg, googlenet, resnet, densenet  # noqa: F401, I001
from inspectcnn.models.registry import (
    Architecture,
    InputTooSmallError,
    UnknownModelError,
    architecture,
    build_model,
    check_input_size,
    get_builder,
    list_models,
    minimum_input_size,
    register,
)


def check_architectures(params) -> None:
    """Every ``models:`` entry of a validated params.yaml names a registered architecture."""
    from inspectcnn.config import ConfigError

    known = list_models()
    for name in params.models:
        arch = params.model(name).arch
        if arch not in known:
            raise ConfigError(f"invalid params.yaml:\n  models.{name}.arch: unknown architecture {arch!r}; "
                              f"known: {', '.join(known)}")

__all__ = [
    "Architecture",
    "InputTooSmallError",
    "UnknownModelError",
    "architecture",
    "build_model",
    "check_architectures",
    "check_input_size",
    "get_builder",
    "list_models",
    "minimum_input_size",
    "register",
]
