"""What never trains is computed once: pooled features of a frozen base, or the part of a sequential base
below ``finetune_from`` for every augmentation view; each kept in the work folder (:func:`load_or_compute`),
so a resumed run does not compute it again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from inspectcnn.transfer.base import TransferError

VIEW_CACHE_LIMIT_BYTES = 8 * 2**30
CACHE_KEYS = ("x_train", "y_train", "x_val", "y_val")


def load_or_compute(path: Path, compute: Callable[[], tuple], timings: dict | None = None) -> tuple:
    """The arrays of ``path`` (an .npz of CACHE_KEYS) if it exists, else ``compute()``'s, saved there
    atomically first (the time it took in ``timings["feature_extraction_s"]``)."""
    if path.is_file():
        with np.load(path) as cached:
            return tuple(cached[k] for k in CACHE_KEYS)
    begin = time.perf_counter()
    arrays = compute()
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **dict(zip(CACHE_KEYS, arrays)))
    tmp.replace(path)
    if timings is not None:
        timings["feature_extraction_s"] = round(time.perf_counter() - begin, 2)
    return arrays


def cache_views(lower: keras.Model, data, views: tuple[int, ...], count: int, limit: int = VIEW_CACHE_LIMIT_BYTES
                ) -> tuple[np.ndarray, np.ndarray]:
    """``lower``'s output for every view of every image of an unshuffled split: (N, V, ...) float16, labels."""
    from inspectcnn import dihedral, interrupts

    shape = tuple(int(d) for d in lower.output.shape[1:])
    size = count * len(views) * int(np.prod(shape)) * 2
    if size > limit:
        raise TransferError(
            f"caching {len(views)} view(s) of {count} images at {shape} needs {size / 2**30:.1f} GiB (limit "
            f"{limit / 2**30:.0f} GiB): lower image_size, fine-tune from a later layer, or set cache_features: false")
    out = np.empty((count, len(views), *shape), dtype=np.float16)
    labels, filled = [], 0
    for images, y in data:
        images = np.asarray(images)
        for j, k in enumerate(views):
            out[filled:filled + len(images), j] = keras.ops.convert_to_numpy(lower(dihedral.view(images, k),
                                                                                   training=False))
        labels.append(np.asarray(y))
        filled += len(images)
        interrupts.check()
    return out, np.concatenate(labels)


class ViewBatches(keras.utils.PyDataset):
    """Shuffled batches of cached features, a random view of each image, with its class weight."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                 class_weight: dict[int, float] | None = None):
        super().__init__()
        self.features, self.labels, self.batch_size = features, labels.astype("float32"), batch_size
        self.weights = (np.where(labels.ravel() > 0.5, class_weight[1], class_weight[0]).astype("float32")
                        if class_weight else np.ones(len(labels), "float32"))
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.labels))
        self.view = self.rng.integers(0, self.features.shape[1], len(self.labels))

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return (self.features[rows, self.view[rows]].astype("float32"), self.labels[rows], self.weights[rows])


def extract_features(model: keras.Model, data) -> tuple[np.ndarray, np.ndarray]:
    """Pooled base features and labels of a whole (unshuffled, unaugmented) split."""
    feature_model = keras.Model(model.input, model.get_layer("avg_pool").output)
    features, labels = [], []
    for images, y in data:
        features.append(keras.ops.convert_to_numpy(feature_model(images, training=False)))
        labels.append(np.asarray(y))
    return np.concatenate(features), np.concatenate(labels)
