"""One registry: architecture name -> builder ``(input_shape, *, width=1.0, **options) -> keras.Model``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from inspectcnn.errors import UserError

Builder = Callable[..., keras.Model]


@dataclass(frozen=True)
class Architecture:
    """What the project knows of one architecture, declared beside its builder (timm-style)."""

    name: str
    build: Builder
    family: str  # lenet | simple | alexnet | vgg | inception | resnet | densenet
    native_size: int  # the square input its paper used: the full-size (GPU) configuration trains at it
    min_size: int  # the smallest square input every layer accepts (tests/models/test_zoo.py measures it)


_ARCHITECTURES: dict[str, Architecture] = {}


class UnknownModelError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class InputTooSmallError(UserError, ValueError):
    """The input is smaller than the architecture's down-sampling allows."""


def register(name: str, builder: Builder, *, family: str, native_size: int, min_size: int) -> None:
    if name in _ARCHITECTURES:
        raise ValueError(f"model {name!r} is registered twice")
    _ARCHITECTURES[name] = Architecture(name, builder, family, native_size, min_size)


def list_models() -> list[str]:
    return list(_ARCHITECTURES)


def architecture(name: str) -> Architecture:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise UnknownModelError(f"unknown architecture {name!r}; known: {', '.join(_ARCHITECTURES)}") from None


def get_builder(name: str) -> Builder:
    return architecture(name).build


def too_small(model: keras.Model) -> bool:
    """Some layer's output has a spatial side below 1 (the input did not survive the down-sampling)."""
    for layer in model.layers:
        shape = layer.output.shape
        if len(shape) == 4 and (shape[1] < 1 or shape[2] < 1):
            return True
    return False


def minimum_input_size(name: str, channels: int = 3) -> int:
    """Smallest square input the architecture accepts (declared at registration)."""
    return architecture(name).min_size


def check_input_size(name: str, size: int, channels: int = 3) -> None:
    """InputTooSmallError, naming the minimum, unless a size x size input fits; builds nothing."""
    minimum = minimum_input_size(name, channels)
    if size < minimum:
        raise InputTooSmallError(
            f"{name}: input {size}x{size} is too small; this architecture needs at least {minimum}x{minimum}"
        )


def build_model(name: str, input_shape: tuple[int, int, int], *, width: float = 1.0, **options) -> keras.Model:
    """Build a registered architecture for ``input_shape`` (H, W, C), channels last, sigmoid output."""
    builder = get_builder(name)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"{name}: input_shape must be (height, width, 1 or 3), got {input_shape}")
    if width <= 0:
        raise ValueError(f"{name}: width must be positive, got {width}")
    for side in input_shape[:2]:
        check_input_size(name, side, input_shape[-1])
    return builder(tuple(input_shape), width=width, **options)
