"""The input pipeline (a Keras PyDataset over NumPy shards): shapes, dtypes, value range, channels, order,
seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from inspectcnn.config import AugmentConfig, DataConfig
from inspectcnn.data.dataset import load_split
from inspectcnn.data.prepare import run as prepare
from inspectcnn.data.store import read_index as load_labels


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
    values = np.concatenate([x.ravel() for x, _ in data])
    assert values.min() >= 0.0 and values.max() <= 1.0 and values.std() > 0.01
    # stored as 8-bit: every value is k / 255
    np.testing.assert_allclose(values * 255, np.round(values * 255), atol=1e-3)


def test_augmented_training_batches_keep_shape_and_range(prepared):
    augment = AugmentConfig(rotation=0.1, brightness=0.2, contrast=0.2)
    data = load_split(prepared, "train", image_size=16, batch_size=5, shuffle=True, augment=augment, seed=1)
    total = 0
    for images, labels in data:
        assert images.shape[1:] == (16, 16, 1)
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
        total += len(labels)
    assert total == 35  # 70 % of 50


def test_unshuffled_order_matches_labels(prepared):
    ids, labels, _ = load_labels(prepared, "val")
    data = load_split(prepared, "val", image_size=16, batch_size=4)
    got_labels = [int(v) for _, y in data for v in y.ravel()]
    assert data.ids == ids and got_labels == labels and data.labels.ravel().tolist() == labels


def test_shards_are_plain_numpy_that_need_no_tensorflow(prepared):
    from inspectcnn.data.store import read_meta

    meta = read_meta(prepared)
    files = [prepared / name for name in meta["splits"]["train"]["shards"]]
    assert [f.suffix for f in files] == [".npy"] * len(files) and len(files) == 5  # 35 images, 8 per shard
    stored = np.concatenate([np.load(f, mmap_mode="r") for f in files])
    assert stored.dtype == np.uint8 and stored.shape == (35, 24, 24, 1)
    first = load_split(prepared, "train", image_size=24, batch_size=35)[0][0]
    np.testing.assert_array_equal(np.round(first * 255).astype(np.uint8), stored)


def test_shuffled_epochs_differ_and_repeat_with_the_seed(prepared):
    augment = AugmentConfig(dihedral=True, brightness=0.2, contrast=0.2)

    def epochs(seed, count=2):
        data = load_split(prepared, "train", image_size=16, batch_size=8, shuffle=True, augment=augment, seed=seed)
        out = []
        for _ in range(count):
            out.append(np.concatenate([data[i][1] for i in range(len(data))]).ravel().tolist())
            out.append(data[0][0])
            data.on_epoch_end()
        return out

    first, again, other = epochs(1), epochs(1), epochs(2)
    assert first[0] != first[2]  # a new order every epoch
    assert first[0] == again[0] and first[2] == again[2]  # the same orders for the same seed
    np.testing.assert_array_equal(first[1], again[1])  # and the same augmentation draws
    assert not np.array_equal(first[1], other[1])


def test_a_prepared_folder_of_the_tfrecord_era_is_refused_with_the_fix(tmp_path, prepared):
    import json
    import shutil

    from inspectcnn.data.store import PrepareError

    old = tmp_path / "old"
    shutil.copytree(prepared, old)
    meta = json.loads((old / "meta.json").read_text())
    del meta["format"]
    (old / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PrepareError, match="older version.*dvc repro prepare"):
        load_split(old, "train", image_size=16, batch_size=4)


def test_rgb_data_cannot_feed_a_grayscale_model(tmp_path, image_tree):
    root = image_tree({"a": 10, "b": 10})
    config = DataConfig(source="folder", path=str(root), image_size=16, color_mode="rgb")
    prepare(config, tmp_path / "p", tmp_path / "s.json", seed=0)
    with pytest.raises(ValueError, match="3-channel images to a model that takes 1"):
        load_split(tmp_path / "p", "train", image_size=16, batch_size=2, channels=1)
