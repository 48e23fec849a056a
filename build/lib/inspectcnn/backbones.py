"""The one table of transfer-learning backbones (``transfer.<name>.backbone`` in params.yaml).

Imports nothing: params validation reads the names, the transfer stage the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    constructor: str  # the keras.applications function
    preprocessing: str  # the family's preprocess_input mode: caffe | torch | tf | raw (the model rescales)
    finetune_from: str  # finetune_from: auto -> the first layer of the last stage, trained in phase 2
    sequential: bool = False  # a plain chain of layers: the part below any layer can be computed once and cached


BACKBONES: dict[str, Backbone] = {
    "vgg16": Backbone("VGG16", "caffe", "block5_conv1", sequential=True),
    "vgg19": Backbone("VGG19", "caffe", "block5_conv1", sequential=True),
    "resnet50": Backbone("ResNet50", "caffe", "conv5_block1_1_conv"),
    "densenet121": Backbone("DenseNet121", "torch", "conv5_block1_0_bn"),
    "mobilenet_v2": Backbone("MobileNetV2", "tf", "block_16_expand"),
    "efficientnet_b0": Backbone("EfficientNetB0", "raw", "block7a_expand_conv"),
}
