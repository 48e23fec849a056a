"""The tf.data builder: shapes, dtypes, value range, channels and order."""

from __future__ import annotations

import numpy as np
import pytest

from inspectcnn.config import AugmentConfig, DataConfig
from inspectcnn.data.dataset import load_labels, load_split
from inspectcnn.data.prepare import prepare


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    import helpers

    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for name, count in (("a", 30), ("b", 20)):
        for i in range(count):
            helpers.write_image(root / "images" / name / f"{i}.png", rng, size=(50, 40))
    config = DataConfig(source="folder", path=str(root / "images"), image_size=24, shard_size=8)
    prepare(config, root / "prepared", root / "summary.json", seed=0)
    return root / "prepared"


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_dtypes_and_range(prepared, channels):
    data = load_split(prepared, "train", image_size=20, batch_size=8, channels=channels)
    images, labels = next(iter(data))
    assert images.shape == (8, 20, 20, channels) and images.dtype.name == "float32"
    assert labels.shape == (8, 1) and labels.dtype.name == "float32"
    values = np.concatenate([x.numpy().ravel() for x, _ in data])
    assert values.min() >= 0.0 and values.max() <= 1.0 and values.std() > 0.01
    # stored as 8-bit: every value is k / 255
    np.testing.assert_allclose(values * 255, np.round(values * 255), atol=1e-3)


def test_augmented_training_batches_keep_shape_and_range(prepared):
    augment = AugmentConfig(rotation=0.1, brightness=0.2, contrast=0.2)
    data = load_split(prepared, "train", image_size=16, batch_size=5, shuffle=True, augment=augment, seed=1)
    total = 0
    for images, labels in data:
        assert images.shape[1:] == (16, 16, 1)
        assert float(images.numpy().min()) >= 0.0 and float(images.numpy().max()) <= 1.0
        total += len(labels)
    assert total == 35  # 70 % of 50


def test_unshuffled_order_matches_labels(prepared):
    ids, labels, _ = load_labels(prepared, "val")
    data = load_split(prepared, "val", image_size=16, batch_size=4, with_ids=True)
    got_ids = [i.decode() for _, _, batch_ids, _ in data for i in batch_ids.numpy()]
    got_labels = [int(v) for _, y, _, _ in data for v in y.numpy().ravel()]
    assert got_ids == ids and got_labels == labels


def test_rgb_data_cannot_feed_a_grayscale_model(tmp_path, image_tree):
    root = image_tree({"a": 10, "b": 10})
    config = DataConfig(source="folder", path=str(root), image_size=16, color_mode="rgb")
    prepare(config, tmp_path / "p", tmp_path / "s.json", seed=0)
    with pytest.raises(ValueError, match="3-channel images to a model that takes 1"):
        load_split(tmp_path / "p", "train", image_size=16, batch_size=2, channels=1)
