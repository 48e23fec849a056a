"""The model zoo: every architecture of the lecture notes, built by name.

To add an architecture: write a module with a builder ``(input_shape, *, width=1.0) -> keras.Model``
and register it below with one line.
"""

from inspectcnn.models import alexnet, densenet, googlenet, lenet, resnet, simple_cnn, vgg
from inspectcnn.models.registry import (
    InputTooSmallError,
    UnknownModelError,
    build_model,
    check_input_size,
    get_builder,
    list_models,
    minimum_input_size,
    register,
)

register("lenet", lenet.build)
register("simple_cnn", simple_cnn.build)
register("alexnet", alexnet.build)
register("vgg11", vgg.vgg11)
register("vgg13", vgg.vgg13)
register("vgg16", vgg.vgg16)
register("vgg19", vgg.vgg19)
register("googlenet", googlenet.build)
register("resnet18", resnet.resnet18)
register("resnet34", resnet.resnet34)
register("resnet50", resnet.resnet50)
register("densenet121", densenet.densenet121)


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
    "InputTooSmallError",
    "UnknownModelError",
    "build_model",
    "check_architectures",
    "check_input_size",
    "get_builder",
    "list_models",
    "minimum_input_size",
    "register",
]
