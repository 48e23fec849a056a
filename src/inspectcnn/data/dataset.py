"""tf.data input pipeline over the prepared TFRecord shards.

Order of work: read shards (interleaved) -> decode PNG -> resize to the model's size -> cache
(uint8, before any randomness) -> shuffle -> batch -> augment (Keras preprocessing layers, on
whole batches) -> to float in [0, 1] with the channels the model wants -> prefetch.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from inspectcnn import dihedral
from inspectcnn.config import AugmentConfig
from inspectcnn.data.prepare import read_meta

_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "id": tf.io.FixedLenFeature([], tf.string),
    "group": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def augmentation(config: AugmentConfig, seed: int | None = None) -> keras.Sequential | None:
    """The random flips, rotation, brightness and contrast of ``config`` as Keras layers on float images
    in [0, 1], or None."""
    layers = []
    if config.flip != "none":
        layers.append(keras.layers.RandomFlip(config.flip, seed=seed))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation, fill_mode="reflect", seed=seed))
    if config.brightness:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0.0, 1.0), seed=seed))
    if config.contrast:
        layers.append(keras.layers.RandomContrast(config.contrast, value_range=(0.0, 1.0), seed=seed))
    # augment.dihedral is applied before these layers, by inspectcnn.dihedral.random_views
    return keras.Sequential(layers, name="augment") if layers else None


def split_files(prepared_dir: str | Path, split: str) -> list[str]:
    meta = read_meta(prepared_dir)
    if split not in meta["splits"]:
        raise ValueError(f"unknown split {split!r}; prepared splits: {sorted(meta['splits'])}")
    return [str(Path(prepared_dir) / name) for name in meta["splits"][split]["shards"]]


def _decoder(stored_channels: int, image_size: int, with_ids: bool):
    def decode(record):
        example = tf.io.parse_single_example(record, _FEATURES)
        image = tf.io.decode_png(example["image"], channels=stored_channels)
        image = tf.image.resize(image, (image_size, image_size), method="area", antialias=True)
        image = tf.cast(tf.round(image), tf.uint8)
        label = tf.cast(example["label"], tf.float32)[tf.newaxis]
        if with_ids:
            return image, label, example["id"], example["group"]
        return image, label

    return decode


def load_split(
    prepared_dir: str | Path,
    split: str,
    *,
    image_size: int,
    batch_size: int,
    channels: int | None = None,
    shuffle: bool = False,
    augment: AugmentConfig | None = None,
    seed: int | None = None,
    cache: bool = True,
    drop_remainder: bool = False,
    with_ids: bool = False,
) -> tf.data.Dataset:
    """Batches of (images float32 (B, S, S, C) in [0, 1], labels float32 (B, 1)) of one split.

    ``channels`` is what the model takes (1 or 3; default: as stored); grayscale is repeated to 3.
    ``with_ids`` adds the item ids and groups (for evaluation), and is incompatible with shuffling.
    """
    meta = read_meta(prepared_dir)
    stored = int(meta["channels"])
    channels = channels or stored
    if channels not in (1, 3) or (stored == 3 and channels == 1):
        raise ValueError(f"cannot feed {stored}-channel images to a model that takes {channels} channel(s)")
    files = split_files(prepared_dir, split)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    data = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        data = data.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # Unshuffled reads go shard after shard, so the order matches load_labels.
    data = data.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 4) if shuffle else 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    data = data.map(_decoder(stored, image_size, with_ids), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        data = data.cache()
    if shuffle:
        buffer = min(int(meta["splits"][split]["count"]), 10_000)
        data = data.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    # TFRecord reads have unknown length; stating it lets Keras plan epochs without running dry.
    count = int(meta["splits"][split]["count"])
    data = data.apply(tf.data.experimental.assert_cardinality(
        count // batch_size if drop_remainder else -(-count // batch_size)))

    augmenter = augmentation(augment, seed) if augment is not None else None

    def to_model_input(images, labels, *rest):
        images = tf.cast(images, tf.float32) / 255.0
        if augment is not None and augment.dihedral:
            images = dihedral.random_views(images, seed)
        if augmenter is not None:
            images = tf.clip_by_value(augmenter(images, training=True), 0.0, 1.0)
        if channels == 3 and stored == 1:
            images = tf.repeat(images, 3, axis=-1)
        return (images, labels, *rest)

    data = data.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE).with_options(options)


def load_labels(prepared_dir: str | Path, split: str) -> tuple[list[str], list[int], list[str]]:
    """(ids, labels, groups) of a split in the order :func:`load_split` yields them unshuffled."""
    ids, labels, groups = [], [], []
    for record in tf.data.TFRecordDataset(split_files(prepared_dir, split)):
        example = tf.io.parse_single_example(record, _FEATURES)
        ids.append(example["id"].numpy().decode())
        labels.append(int(example["label"]))
        groups.append(example["group"].numpy().decode())
    return ids, labels, groups
