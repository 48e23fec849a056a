"""The input pipeline: a ``keras.utils.PyDataset`` over the prepared uint8 NumPy shards, the same under
every Keras backend (TensorFlow, JAX, PyTorch) and needing none of them to read the data.

Order of work: memory-map the split's shards -> resize to the model's size once (area-averaging when
shrinking, Pillow) and keep the uint8 result in memory (``cache``) -> per epoch, a seeded permutation ->
per batch: gather -> float in [0, 1] -> a random dihedral view per image -> the Keras preprocessing
layers of ``train.augment`` (flip, rotation, brightness, contrast), seeded, compiled by Keras -> the
channels the model wants. Keras' ``fit`` applies ``class_weight`` to these batches in every backend.

Why a PyDataset and not tf.data or grain: tf.data would keep TensorFlow on the JAX and PyTorch paths;
grain is a further dependency whose datasets Keras' ``fit`` refuses ``class_weight`` for; the uint8
gather from memory is cheap, and the input outruns the fastest network (benchmarks/input_headroom.py,
benchmarks/README.md section 2).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from inspectcnn import dihedral
from inspectcnn.config import AugmentConfig
from inspectcnn.data import images as images_
from inspectcnn.data.store import read_index, read_meta, shard_files


def augmentation(config: AugmentConfig, seed: int | None = None) -> list[keras.layers.Layer]:
    """The random flips, rotation, brightness and contrast of ``config`` as Keras preprocessing layers on
    float images in [0, 1] (float32 whatever the global dtype policy); augment.dihedral is applied
    before them, by :func:`inspectcnn.dihedral.random_views`."""
    layers = []
    if config.flip != "none":
        layers.append(keras.layers.RandomFlip(config.flip, seed=seed, dtype="float32"))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation, fill_mode="reflect", seed=seed, dtype="float32"))
    if config.brightness:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0.0, 1.0), seed=seed,
                                                    dtype="float32"))
    if config.contrast:
        layers.append(keras.layers.RandomContrast(config.contrast, value_range=(0.0, 1.0), seed=seed, dtype="float32"))
    return layers


class Augmenter(keras.Model):
    """The augmentation layers as one Keras model that applies them in training mode. Run through Keras'
    ``predict_on_batch``, which compiles it the backend's way (tf.function, jax.jit): per batch of 32,
    3x faster (TensorFlow, JAX: 1.4 and 0.4 ms against 4.7 and 1.4 ms) than calling the layers eagerly."""

    def __init__(self, layers: list[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self.augment_layers = layers

    def call(self, images, training=None):
        for layer in self.augment_layers:
            images = layer(images, training=True)
        return images


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, S, S, C) to (N, size, size, C), each image as the prepare stage resizes
    (:func:`inspectcnn.data.images.resize`)."""
    if images.shape[1] == size:
        return np.asarray(images)
    out = np.empty((len(images), size, size, images.shape[-1]), np.uint8)
    for i, image in enumerate(images):
        out[i] = images_.resize(image[..., 0] if image.shape[-1] == 1 else image, size).reshape(size, size, -1)
    return out


class _Split:
    """The uint8 images of one split, resized on demand (``cache=False``) or once, in memory."""

    def __init__(self, files: list[Path], size: int, cache: bool):
        self.shards = [np.load(f, mmap_mode="r") for f in files]
        self.starts = np.cumsum([0, *[len(s) for s in self.shards]])
        self.size = size
        self.images = None
        if cache:
            with ThreadPoolExecutor(2) as pool:  # Pillow releases the GIL while it resizes
                self.images = np.concatenate(list(pool.map(lambda s: resize(s, size), self.shards)))

    def __len__(self) -> int:
        return int(self.starts[-1])

    def gather(self, indices: np.ndarray) -> np.ndarray:
        if self.images is not None:
            return self.images[indices]
        shard = np.searchsorted(self.starts, indices, side="right") - 1
        rows = [self.shards[s][i - self.starts[s]] for s, i in zip(shard, indices)]
        return resize(np.stack(rows), self.size)


def default_workers() -> int:
    """Threads building batches ahead of the model: none on a CPU-only machine (on 2 cores Keras' thread
    enqueuer cost more than it overlapped: 9k against 31k images/s under JAX), a few beside a GPU, whose
    steps would otherwise wait for the host."""
    import os

    from inspectcnn import devices

    return 1 if not devices.gpus() else max(1, min(4, (os.cpu_count() or 2) // 2))


class SplitBatches(keras.utils.PyDataset):
    """Batches (images float32 (B, S, S, C) in [0, 1], labels float32 (B, 1)) of one prepared split.

    ``ids``, ``labels`` and ``groups`` give every item in the unshuffled order, for evaluation.

    ``shard=(index, count)``: this process's part of every global batch of ``batch_size``, rows
    ``[index * batch_size / count, (index + 1) * batch_size / count)``, for a multi-worker training whose engine
    takes each process's local batch (``keras.distribution`` with ``auto_shard_dataset=False``). Every worker
    draws the same order from the seed; a last batch that does not split evenly among the workers is left out.
    """

    def __init__(self, prepared_dir: str | Path, split: str, *, image_size: int, batch_size: int,
                 channels: int | None = None, shuffle: bool = False, augment: AugmentConfig | None = None,
                 seed: int | None = None, cache: bool = True, drop_remainder: bool = False,
                 workers: int | None = None, shard: tuple[int, int] | None = None):
        super().__init__(workers=workers or default_workers(), use_multiprocessing=False, max_queue_size=8)
        meta = read_meta(prepared_dir)
        stored = int(meta["channels"])
        channels = channels or stored
        if channels not in (1, 3) or (stored == 3 and channels == 1):
            raise ValueError(f"cannot feed {stored}-channel images to a model that takes {channels} channel(s)")
        self.split = _Split(shard_files(prepared_dir, split, meta), image_size, cache)
        self.ids, labels, self.groups = read_index(prepared_dir, split)
        if len(labels) != len(self.split):
            raise ValueError(f"{prepared_dir}: {split}.csv lists {len(labels)} items, its shards hold {len(self.split)}"
                             " - the prepared folder is damaged: run the prepare stage again")
        self.labels = np.asarray(labels, np.float32)[:, None]
        self.batch_size, self.channels, self.stored = batch_size, channels, stored
        self.shuffle, self.seed, self.drop_remainder = shuffle, seed or 0, drop_remainder
        self.dihedral = bool(augment is not None and augment.dihedral)
        layers = augmentation(augment, seed) if augment is not None else []
        self.augmenter = Augmenter(layers, name="augment") if layers else None
        self.epoch = 0
        self.order = self._order()
        self.shard = shard
        if shard is not None and batch_size % shard[1]:
            raise ValueError(f"a global batch of {batch_size} does not split evenly among {shard[1]} workers")

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.split))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.split))

    def __len__(self) -> int:
        count = len(self.split)
        uneven = self.shard is not None and (count % self.batch_size) % self.shard[1]
        return count // self.batch_size if self.drop_remainder or uneven else math.ceil(count / self.batch_size)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        indices = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if self.shard is not None:
            part = len(indices) // self.shard[1]
            indices = indices[self.shard[0] * part:(self.shard[0] + 1) * part]
        images = self.split.gather(indices).astype(np.float32) / np.float32(255.0)
        if self.dihedral:  # a draw fixed by (seed, epoch, batch)
            images = dihedral.random_views(images, np.random.default_rng([self.seed, self.epoch, index]))
        if self.augmenter is not None:  # seeded layers: the same draws for the same sequence of batches
            with keras.device("cpu:0"):  # on the host, where the batch is: no round trip through a GPU
                images = np.clip(keras.ops.convert_to_numpy(self.augmenter.predict_on_batch(images)), 0.0, 1.0)
        if self.channels == 3 and self.stored == 1:
            images = np.repeat(images, 3, axis=-1)
        return images, self.labels[indices]


def load_split(prepared_dir: str | Path, split: str, **options) -> SplitBatches:
    """One split of the prepared data as batches; see :class:`SplitBatches` for the options."""
    return SplitBatches(prepared_dir, split, **options)
