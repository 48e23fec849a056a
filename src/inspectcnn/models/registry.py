"""One registry: architecture name -> builder ``(input_shape, *, width=1.0, **options) -> keras.Model``."""

from __future__ import annotations

from collections.abc import Callable

import keras

from inspectcnn.errors import UserError

Builder = Callable[..., keras.Model]
_BUILDERS: dict[str, Builder] = {}


class UnknownModelError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class InputTooSmallError(UserError, ValueError):
    """The input is smaller than the architecture's down-sampling allows."""


def register(name: str, builder: Builder) -> None:
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder


def list_models() -> list[str]:
    return list(_BUILDERS)


def get_builder(name: str) -> Builder:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise UnknownModelError(f"unknown architecture {name!r}; known: {', '.join(_BUILDERS)}") from None


def _too_small(model: keras.Model) -> bool:
    for layer in model.layers:
        shape = layer.output.shape
        if len(shape) == 4 and (shape[1] < 1 or shape[2] < 1):
            return True
    return False


def _fits(builder: Builder, size: int, channels: int) -> bool:
    try:
        return not _too_small(builder((size, size, channels), width=0.125))
    except ValueError:
        return False


def minimum_input_size(name: str, channels: int = 3, upper: int = 1024) -> int:
    """Smallest square input the architecture accepts (binary search over cheap narrow builds)."""
    builder = get_builder(name)
    low, high = 1, upper
    while low < high:
        middle = (low + high) // 2
        if _fits(builder, middle, channels):
            high = middle
        else:
            low = middle + 1
    return low


def check_input_size(name: str, size: int, channels: int = 3) -> None:
    """InputTooSmallError (with the minimum) unless a size x size input fits; costs one narrow build."""
    if not _fits(get_builder(name), size, channels):
        minimum = minimum_input_size(name, channels)
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
    try:
        model = builder(tuple(input_shape), width=width, **options)
        too_small = _too_small(model)
    except ValueError:
        too_small = True
    if too_small:
        minimum = minimum_input_size(name, input_shape[-1])
        raise InputTooSmallError(
            f"{name}: input {input_shape[0]}x{input_shape[1]} is too small; "
            f"this architecture needs at least {minimum}x{minimum}"
        )
    return model
