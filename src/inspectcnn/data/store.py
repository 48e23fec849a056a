"""The prepared-data contract: what the prepare stage writes and every later step reads.

A prepared folder holds uint8 NumPy shards ``<split>-NNNNN.npy`` (N, S, S, C) with ``<split>.csv``
(id, label, group) beside them, ``meta.json`` (source, classes, stored size, channels, shards per split,
and ``format``) and ``manifest.csv`` (one row per image: id, source, sha256, label, class, group, split,
original size and, where the data set has them, annotated levels such as ELPV's defect ``probability``).
Writers and readers both go through this module; ``meta.json`` is always format-checked on reading.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from inspectcnn.artifacts import PREPARED_MANIFEST as MANIFEST_FILE
from inspectcnn.artifacts import PREPARED_META as META_FILE
from inspectcnn.artifacts import split_index
from inspectcnn.errors import UserError

# uint8 NumPy shards (N, S, S, C) + <split>.csv (id, label, group): every Keras backend reads them without
# TensorFlow. Prepared folders of older versions (TFRecord shards) carry no "format" and are refused.
STORAGE_FORMAT = "npy-uint8-nhwc"
LEVEL_COLUMN = "probability"  # the annotated level of an image (ELPV: the experts' defect probability)


class PrepareError(UserError, ValueError):
    """The data set cannot be prepared as configured, or a prepared folder cannot be read."""


def read_meta(prepared_dir: Path) -> dict:
    """The facts later stages need about the prepared data (size, channels, classes, shards), format-checked."""
    path = Path(prepared_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    meta = json.loads(path.read_text())
    if meta.get("format") != STORAGE_FORMAT:
        raise PrepareError(f"{prepared_dir} was prepared by an older version (format {meta.get('format', 'tfrecord')!r}, "
                           f"this one reads {STORAGE_FORMAT!r}): run the prepare stage again (dvc repro prepare)")
    return meta


def write_meta(prepared_dir: Path, meta: dict) -> None:
    (Path(prepared_dir) / META_FILE).write_text(json.dumps({**meta, "format": STORAGE_FORMAT}, indent=2) + "\n")


def manifest_path(prepared_dir: Path) -> Path:
    return Path(prepared_dir) / MANIFEST_FILE


def write_manifest(prepared_dir: Path, rows: list[dict]) -> None:
    with manifest_path(prepared_dir).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(prepared_dir: Path) -> list[dict]:
    """Every row of manifest.csv (strings, as written); a clear error when the folder has none."""
    path = manifest_path(prepared_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def labels(prepared_dir: Path, split: str) -> list[int]:
    """The labels of one split, in manifest order."""
    return [int(row["label"]) for row in read_manifest(prepared_dir) if row["split"] == split]


def levels(prepared_dir: Path, split: str | None = None) -> dict[str, float]:
    """id -> annotated level (ELPV: the defect probability) of ``split`` (default all); {} when the data set
    has no levels."""
    if not manifest_path(prepared_dir).is_file():
        return {}
    return {row["id"]: float(row[LEVEL_COLUMN]) for row in read_manifest(prepared_dir)
            if row.get(LEVEL_COLUMN) not in (None, "") and (split is None or row["split"] == split)}


def manifest_sha256(prepared_dir: Path) -> str | None:
    """The manifest's SHA-256 (what identifies the prepared data in MLflow and every inference spec)."""
    path = manifest_path(prepared_dir)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# --------------------------------------------------------------------------- shards


class ShardWriter:
    """Rolls over to a new ``<split>-NNNNN.npy`` every ``shard_size`` images: uint8 (n, S, S, C) arrays in
    NumPy's own format, which any process memory-maps without TensorFlow. Each file is written as a
    stream (header, then one image after the other), not through a memory map, so the process holds
    one image at a time however large the data set. The split's ids, labels and groups go, in the
    same order, to ``<split>.csv``."""

    def __init__(self, folder: Path, split: str, shard_size: int, total: int, image_shape: tuple[int, ...]):
        self.folder, self.split, self.shard_size, self.total = folder, split, shard_size, total
        self.image_shape = image_shape
        self.count, self.files, self._shard = 0, [], None
        self._index = split_index(folder, split).open("w", newline="", encoding="utf-8")
        self._rows = csv.writer(self._index)
        self._rows.writerow(["id", "label", "group"])

    def write(self, pixels: np.ndarray, label: int, item_id: str, group: str) -> None:
        if self.count % self.shard_size == 0:
            self.close_shard()
            name = f"{self.split}-{len(self.files):05d}.npy"
            self.files.append(name)
            rows = min(self.shard_size, self.total - self.count)
            self._shard = (self.folder / name).open("wb")
            np.lib.format.write_array_header_1_0(self._shard, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                "shape": (rows, *self.image_shape)})
        self._shard.write(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
        self._rows.writerow([item_id, label, group])
        self.count += 1

    def close_shard(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None

    def close(self) -> None:
        self.close_shard()
        self._index.close()


def shard_files(prepared_dir: str | Path, split: str, meta: dict | None = None) -> list[Path]:
    meta = meta or read_meta(prepared_dir)
    if split not in meta["splits"]:
        raise ValueError(f"unknown split {split!r}; prepared splits: {sorted(meta['splits'])}")
    return [Path(prepared_dir) / name for name in meta["splits"][split]["shards"]]


def read_index(prepared_dir: str | Path, split: str) -> tuple[list[str], list[int], list[str]]:
    """(ids, labels, groups) of a split in the order of its shards (the order
    :func:`inspectcnn.data.dataset.load_split` yields them unshuffled)."""
    shard_files(prepared_dir, split)  # the split exists
    with split_index(prepared_dir, split).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["id"] for r in rows], [int(r["label"]) for r in rows], [r["group"] for r in rows]


def write_subset(prepared_dir: Path, out_dir: Path, split: str, keep: set[str]) -> dict:
    """A prepared folder at ``out_dir`` equal to ``prepared_dir`` but with ``split`` reduced to the ids in
    ``keep`` (the other splits' shards copied byte for byte, the manifest filtered alike): what a
    label-efficiency experiment trains on. Returns the new ``meta.json``."""
    import shutil

    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    meta = read_meta(prepared_dir)
    ids, labels_, groups = read_index(prepared_dir, split)
    unknown = sorted(set(keep) - set(ids))
    if unknown:
        raise PrepareError(f"{len(unknown)} ids to keep are not in the {split} split, e.g. {unknown[:3]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(d) for d in np.load(shard_files(prepared_dir, split, meta)[0], mmap_mode="r").shape[1:])
    writer = ShardWriter(out_dir, split, int(meta.get("shard_size") or 1024), len(keep), shape)
    offset = 0
    for file in shard_files(prepared_dir, split, meta):
        shard = np.load(file, mmap_mode="r")
        for row in range(len(shard)):
            index = offset + row
            if ids[index] in keep:
                writer.write(shard[row], labels_[index], ids[index], groups[index])
        offset += len(shard)
    writer.close()
    splits = dict(meta["splits"])
    splits[split] = {**splits[split], "count": writer.count, "shards": writer.files}
    for other in splits:
        if other != split:
            for name in splits[other]["shards"]:
                shutil.copyfile(prepared_dir / name, out_dir / name)
            shutil.copyfile(split_index(prepared_dir, other), split_index(out_dir, other))
    write_manifest(out_dir, [row for row in read_manifest(prepared_dir)
                             if row["split"] != split or row["id"] in keep])
    new_meta = {k: v for k, v in {**meta, "splits": splits}.items() if k != "format"}
    write_meta(out_dir, new_meta)
    return read_meta(out_dir)
