"""Architecture summary: parameters, multiply-accumulates per image, block output shapes, receptive field."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers

from inspectcnn.models.registry import build_model

_WINDOWED = (layers.Conv2D, layers.DepthwiseConv2D, layers.MaxPooling2D, layers.AveragePooling2D)


@dataclass(frozen=True)
class Summary:
    name: str
    input_shape: tuple[int, ...]
    params: int
    trainable_params: int
    macs: int  # multiply-accumulates for one image, convolutions and dense layers
    receptive_field: int  # of one unit of the `features` output, in input pixels
    blocks: tuple[tuple[str, tuple[int, ...]], ...]  # (block name, output shape) in order

    def row(self) -> dict:
        return {
            "model": self.name,
            "input": "x".join(map(str, self.input_shape)),
            "params": self.params,
            "macs": self.macs,
            "receptive_field": self.receptive_field,
        }


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-accumulates of one layer for one image (0 for layers without weights to multiply)."""
    if isinstance(layer, keras.Model):  # a nested model (one output or several): its own layers
        return count_macs(layer)
    out = layer.output.shape
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        c_in = layer.input.shape[-1]
        return out[1] * out[2] * c_in * (kh * kw * layer.depth_multiplier + out[-1])
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return out[1] * out[2] * out[-1] * kh * kw
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        c_in = layer.input.shape[-1] // layer.groups
        return out[1] * out[2] * out[-1] * kh * kw * c_in
    if isinstance(layer, layers.Dense):
        positions = 1
        for dim in out[1:-1]:
            positions *= dim
        return positions * layer.input.shape[-1] * layer.units
    if isinstance(layer, layers.EinsumDense):  # every output element sums over the kernel's contracted axis
        size = 1
        for dim in out[1:]:
            size *= dim
        return size * int(layer.kernel.shape[-2])
    return 0


def count_macs(model: keras.Model) -> int:
    return int(sum(layer_macs(layer) for layer in model.layers))


def receptive_field(model: keras.Model, layer_name: str = "features") -> int:
    """Receptive field (pixels along one axis) of a unit of ``layer_name``'s output.

    Walks the graph: a window of size k (dilation d) at stride s grows the field by (k_eff - 1)
    times the input's jump, and multiplies the jump by s. Branches merge by taking the maximum.
    """
    fields: dict[int, tuple[int, int]] = {}  # id(tensor) -> (field, jump)
    for layer in model.layers:
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        known = [fields.get(id(t), (1, 1)) for t in inputs] or [(1, 1)]
        field, jump = max(f for f, _ in known), max(j for _, j in known)
        if isinstance(layer, _WINDOWED):
            kernel = layer.kernel_size if hasattr(layer, "kernel_size") else layer.pool_size
            strides = layer.strides
            dilation = getattr(layer, "dilation_rate", (1, 1))
            effective = (kernel[0] - 1) * dilation[0] + 1
            field, jump = field + (effective - 1) * jump, jump * strides[0]
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        for tensor in outputs:
            fields[id(tensor)] = (field, jump)
        if layer.name == layer_name:
            return field
    raise ValueError(f"{model.name} has no layer named {layer_name!r}")


def _blocks(model: keras.Model) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Output shape of each named block: layers sharing a name prefix (up to the last '_')."""
    blocks: dict[str, tuple[int, ...]] = {}
    for layer in model.layers[1:]:
        prefix = layer.name.rsplit("_", 1)[0] if "_" in layer.name else layer.name
        blocks[prefix] = tuple(layer.output.shape[1:])
    return tuple(blocks.items())


def summarize(model: keras.Model) -> Summary:
    trainable = int(sum(math.prod(w.shape) for w in model.trainable_weights))
    return Summary(
        name=model.name,
        input_shape=tuple(model.input.shape[1:]),
        params=int(model.count_params()),
        trainable_params=trainable,
        macs=count_macs(model),
        receptive_field=receptive_field(model),
        blocks=_blocks(model),
    )


def summarize_architecture(name: str, input_shape: tuple[int, int, int], width: float = 1.0) -> Summary:
    """Build a registered architecture and summarise it."""
    return summarize(build_model(name, input_shape, width=width))
