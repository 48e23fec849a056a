"""Every registered architecture: builds, outputs probabilities, trains a step, saves and reloads."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inspectcnn.models import (
    InputTooSmallError,
    UnknownModelError,
    architecture,
    build_model,
    get_builder,
    list_models,
    minimum_input_size,
)
from inspectcnn.models.registry import too_small

REQUIRED = {
    "lenet", "simple_cnn", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
    "googlenet", "resnet18", "resnet34", "resnet50", "densenet121",
}


def small_size(name: str) -> int:
    """A small but legal input: 32 px, or the architecture's declared minimum where that is larger."""
    return max(32, architecture(name).min_size + 1)


def test_all_required_architectures_are_registered():
    assert REQUIRED <= set(list_models())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match="unknown architecture 'resnet9'.*lenet.*densenet121"):
        build_model("resnet9", (32, 32, 3))


@pytest.mark.parametrize("name", list_models())
def test_builds_trains_saves_and_reloads(name, tmp_path):
    keras.utils.set_random_seed(0)
    size = small_size(name)
    channels = 1 if name in ("lenet", "resnet18") else 3
    model = build_model(name, (size, size, channels), width=0.125)
    x = np.random.default_rng(0).random((4, size, size, channels), dtype=np.float32)
    y = np.array([[0], [1], [1], [1]], dtype=np.float32)  # unbalanced: never a zero bias gradient

    # predictions by eager calls: only the training step is traced (a deep network's trace costs seconds each)
    probabilities = keras.ops.convert_to_numpy(model(x, training=False))
    assert probabilities.shape == (4, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert model.get_layer("features") is not None

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)  # no custom objects needed
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x, training=False)),
                               keras.ops.convert_to_numpy(model(x, training=False)), rtol=1e-5, atol=1e-6)


def fits(name: str, size: int) -> bool:
    try:
        return not too_small(get_builder(name)((size, size, 3), width=0.125))
    except ValueError:
        return False


@pytest.mark.parametrize("name", list_models())
def test_declared_metadata_matches_the_network(name):
    """The declared minimum input is the real one (binary search over cheap narrow builds)."""
    low, high = 1, 512
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(name, middle) else (middle + 1, high)
    info = architecture(name)
    assert info.min_size == low
    assert info.native_size >= info.min_size and info.family


@pytest.mark.parametrize(("name", "minimum"), [("lenet", 12), ("simple_cnn", 10), ("alexnet", 63), ("vgg16", 32)])
def test_input_too_small_says_the_minimum(name, minimum):
    assert minimum_input_size(name) == minimum
    with pytest.raises(InputTooSmallError, match=f"at least {minimum}x{minimum}"):
        build_model(name, (minimum - 1, minimum - 1, 3), width=0.125)
    build_model(name, (minimum, minimum, 3), width=0.125)


def test_width_multiplier_narrows_every_layer():
    full = build_model("vgg11", (32, 32, 3))
    half = build_model("vgg11", (32, 32, 3), width=0.5)
    assert half.get_layer("block1_conv1").filters == 32 and full.get_layer("block1_conv1").filters == 64
    assert half.get_layer("fc1").units == 2048
    assert half.count_params() < full.count_params() / 3


def test_grayscale_and_rgb_inputs():
    assert build_model("resnet18", (48, 48, 1)).input.shape[-1] == 1
    with pytest.raises(ValueError, match="1 or 3"):
        build_model("resnet18", (48, 48, 4))


def test_small_input_alexnet_tells_keras_it_cannot_use_xla():
    # Below 224 px AlexNet's 6x6 adaptive pool repeats pixels with a nearest resize whose gradient
    # has no XLA kernel; jit_compile="auto" (XLA on a GPU) must then leave the model uncompiled.
    small = build_model("alexnet", (64, 64, 1), width=0.25)
    assert small.get_layer("avgpool").supports_jit is False
    native = build_model("alexnet", (224, 224, 3), width=0.25)
    assert native.get_layer("avgpool").supports_jit is True
