"""Exact parameter counts: the notes' small networks by hand, the big bases against keras.applications."""

from __future__ import annotations

import keras
import pytest

from inspectcnn.models import build_model
from inspectcnn.models.summary import summarize, summarize_architecture


def test_lenet_parameters_on_the_notes_input():
    """LeNet-5 on 28x28x3 (pad 2 keeps 28; pool 14; conv 5x5 valid 10; pool 5; 16*5*5 = 400 features):

    conv1  5*5*3*6 + 6    =    456
    conv2  5*5*6*16 + 16  =  2,416
    fc1    400*120 + 120  = 48,120
    fc2    120*84 + 84    = 10,164
    out    84*1 + 1       =     85
    total                 = 61,241
    """
    model = build_model("lenet", (28, 28, 3))
    assert model.get_layer("flatten").output.shape[-1] == 400
    assert model.count_params() == 456 + 2_416 + 48_120 + 10_164 + 85 == 61_241


def test_simple_cnn_parameters_on_the_notes_input():
    """Self-designed CNN on 28x28x3 (conv 26x26x64; pool 13; conv 11x11x32; pool 5; 32*5*5 = 800):

    conv1  3*3*3*64 + 64   =  1,792
    conv2  3*3*64*32 + 32  = 18,464
    fc1    800*64 + 64     = 51,264
    out    64*1 + 1        =     65
    total                  = 71,585
    """
    model = build_model("simple_cnn", (28, 28, 3))
    assert model.get_layer("flatten").output.shape[-1] == 800
    assert model.count_params() == 1_792 + 18_464 + 51_264 + 65 == 71_585


def test_alexnet_and_vgg16_heads_match_the_notes_listings():
    alexnet = build_model("alexnet", (224, 224, 3))
    assert alexnet.get_layer("flatten").output.shape[-1] == 9216  # 256 * 6 * 6
    assert [alexnet.get_layer(n).units for n in ("fc1", "fc2")] == [4096, 4096]
    vgg = build_model("vgg16", (224, 224, 3))
    assert vgg.get_layer("flatten").output.shape[-1] == 25088  # 512 * 7 * 7
    assert [vgg.get_layer(n).units for n in ("fc1", "fc2", "fc3")] == [4096, 4096, 256]
    assert [vgg.get_layer(n).rate for n in ("fc1_dropout", "fc2_dropout", "fc3_dropout")] == [0.5, 0.5, 0.4]
    conv_layers = [layer for layer in vgg.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(conv_layers) == 13


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("vgg16", keras.applications.VGG16),
        ("resnet50", keras.applications.ResNet50),
        ("densenet121", keras.applications.DenseNet121),
    ],
)
def test_convolutional_base_equals_keras_applications(name, reference):
    ours = build_model(name, (224, 224, 3))
    base = keras.Model(ours.input, ours.get_layer("features").output)
    theirs = reference(weights=None, include_top=False, input_shape=(224, 224, 3))
    assert base.count_params() == theirs.count_params()
    assert base.output.shape == theirs.output.shape


def test_googlenet_has_nine_inception_blocks_in_three_groups():
    model = build_model("googlenet", (96, 96, 3))
    blocks = sorted({layer.name.split("_")[0] for layer in model.layers if layer.name.startswith("inception")})
    assert blocks == ["inception3a", "inception3b", "inception4a", "inception4b", "inception4c",
                      "inception4d", "inception4e", "inception5a", "inception5b"]
    assert model.get_layer("inception5b_concat").output.shape[-1] == 1024


def test_summary_of_lenet():
    summary = summarize_architecture("lenet", (28, 28, 3))
    # MACs: conv1 28*28*6*75 + conv2 10*10*16*150 + 400*120 + 120*84 + 84
    assert summary.macs == 352_800 + 240_000 + 48_000 + 10_080 + 84
    # receptive field of a unit after pool2: conv5 -> pool2 -> conv5 -> pool2 = 1+4+1*2... = 16
    assert summary.receptive_field == 16
    assert dict(summary.blocks)["pool2"] == (5, 5, 16)
    assert summary.params == summary.trainable_params == 61_241


def test_summary_of_vgg16_at_224():
    summary = summarize(build_model("vgg16", (224, 224, 3)))
    assert summary.receptive_field == 212  # the classic VGG-16 figure at block5_pool
    assert round(summary.macs / 1e9, 1) == 15.5  # ~15.5 GMACs for the conv base and head
    assert dict(summary.blocks)["block5"] == (7, 7, 512)  # block5_conv1..3 and block5_pool
