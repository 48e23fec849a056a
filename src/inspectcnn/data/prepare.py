"""The prepare stage: list, decode, check, de-duplicate, split and store a data set as uint8 NumPy shards.

Memory stays flat in the number of images: pass 1 decodes each image once (in a thread pool),
hashes it and appends its resized pixels to a temporary pool file; pass 2 streams the pool into
per-split shards. Everything is written into a temporary folder that replaces the output only
when the whole stage has succeeded, so a failure never leaves half-written outputs behind.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from inspectcnn.artifacts import write_json
from inspectcnn.config import DataConfig
from inspectcnn.data import split_checks, store
from inspectcnn.data.images import BadImageError, content_hash, read_image, resize
from inspectcnn.data.sources import SPLITS, DataSourceError, Item, Listing, list_items
from inspectcnn.data.store import LEVEL_COLUMN, PrepareError

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Decoded:
    item: Item
    sha256: str
    height: int
    width: int


# --------------------------------------------------------------------------- splitting


def _largest_remainder(n: int, fractions: Sequence[float]) -> list[int]:
    """Integer counts summing to n, each within one of n * fraction."""
    raw = [n * f for f in fractions]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign_splits(
    labels: Sequence[int], groups: Sequence[str], hashes: Sequence[str], fractions: dict[str, float], seed: int,
    levels: Sequence[float | None] | None = None,
) -> list[str]:
    """Stratified (label, level, group) split that keeps exact duplicates (same hash) in one split.

    ``levels`` are the annotated grades where a data set has them (ELPV: the experts' defect probability
    0, 1/3, 2/3, 1); stratifying on them too gives train, val and test the same share of the hard
    middle grades, so what is chosen on validation is chosen on a set like the test split.
    Duplicates form one cluster, assigned as a whole; within each stratum, clusters are shuffled
    with ``seed`` and cut by the largest-remainder rule, so each split's count is within one
    cluster of its fraction. Bit-for-bit reproducible for the same inputs and seed.
    """
    levels = levels if levels is not None else [None] * len(labels)
    clusters: dict[str, list[int]] = defaultdict(list)
    for index, digest in enumerate(hashes):
        clusters[digest].append(index)
    strata: dict[tuple[int, float, str], list[list[int]]] = defaultdict(list)
    for members in clusters.values():  # insertion order = first appearance: deterministic
        first = members[0]
        level = -1.0 if levels[first] is None else float(levels[first])
        strata[(labels[first], level, groups[first])].append(members)

    rng = np.random.default_rng(seed)
    names = list(fractions)
    result = [""] * len(labels)
    for key in sorted(strata):
        members = strata[key]
        order = rng.permutation(len(members))
        counts = _largest_remainder(len(members), [fractions[n] for n in names])
        bounds = np.cumsum([0, *counts])
        for part, name in enumerate(names):
            for position in order[bounds[part] : bounds[part + 1]]:
                for index in members[position]:
                    result[index] = name
    return result


def _drop_cross_split_duplicates(decoded: list[Decoded]) -> tuple[list[Decoded], list[dict]]:
    """For data sets that ship their own split: a val/test copy of a train image is a leak; drop it."""
    first_split: dict[str, str] = {}
    for entry in sorted(decoded, key=lambda d: SPLITS.index(d.item.split)):
        first_split.setdefault(entry.sha256, entry.item.split)
    kept, removed = [], []
    for entry in decoded:
        owner = first_split[entry.sha256]
        if entry.item.split != owner:
            removed.append({"path": entry.item.source, "split": entry.item.split, "duplicate_in": owner})
        else:
            kept.append(entry)
    return kept, removed


# --------------------------------------------------------------------------- storage


def _decode_one(item: Item, config: DataConfig) -> tuple[Decoded, bytes] | BadImageError:
    try:
        pixels = read_image(item.path, config.color_mode)
    except BadImageError as error:
        return BadImageError(item.source, error.reason)
    decoded = Decoded(item, content_hash(pixels), pixels.shape[0], pixels.shape[1])
    return decoded, resize(pixels, config.image_size).tobytes()


def _chunks(iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _decode_all(items: list[Item], config: DataConfig, pool_path: Path, seed: int):
    """Pass 1: decode every item once, in a seeded random order (so shards mix the classes)."""
    order = np.random.default_rng(seed).permutation(len(items))
    decoded: list[Decoded] = []
    offsets: list[int] = []  # where each decoded item's resized pixels start in the pool
    bad: list[BadImageError] = []
    with pool_path.open("wb") as pool, ThreadPoolExecutor(config.workers) as executor:
        progress = tqdm(total=len(items), desc="prepare: decode", unit="img", mininterval=2.0,
                        disable=None)  # a bar only on a terminal
        for chunk in _chunks((items[i] for i in order), 256):
            for result in executor.map(lambda item: _decode_one(item, config), chunk):
                if isinstance(result, BadImageError):
                    bad.append(result)
                    continue
                entry, pixels = result
                offsets.append(pool.tell())
                pool.write(pixels)
                decoded.append(entry)
            progress.update(len(chunk))
        progress.close()
    return decoded, offsets, bad


def _read_pool(pool_path: Path, offsets: list[int], shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    size = int(np.prod(shape))
    with pool_path.open("rb") as pool:
        for offset in offsets:
            pool.seek(offset)
            yield np.frombuffer(pool.read(size), np.uint8).reshape(shape)


# --------------------------------------------------------------------------- the stage


def _summarise(rows: list[dict], classes: tuple[str, str]) -> dict:
    summary = {}
    for split in SPLITS:
        members = [row for row in rows if row["split"] == split]
        by_class = Counter(row["class"] for row in members)
        by_group = Counter(row["group"] for row in members if row["group"])
        by_level = Counter(_level_key(row[LEVEL_COLUMN]) for row in members if LEVEL_COLUMN in row)
        summary[split] = {
            "count": len(members),
            "by_class": {name: by_class.get(name, 0) for name in classes},
            **({"by_group": dict(sorted(by_group.items()))} if by_group else {}),
            **({"by_level": dict(sorted(by_level.items()))} if by_level else {}),
            "positive_fraction": round(by_class.get(classes[1], 0) / max(len(members), 1), 4),
        }
    return summary


def _level_key(value: float) -> str:
    """An annotated level as the summary's key: ELPV's 0, 1/3, 2/3, 1 as 0, 0.333, 0.667, 1."""
    return f"{float(value):.3g}"


def _check_splits(rows: list[dict], classes: tuple[str, str]) -> None:
    problems = []
    for split in SPLITS:
        present = {row["class"] for row in rows if row["split"] == split}
        if not present:
            problems.append(f"the {split} split is empty")
        for name in classes:
            if present and name not in present:
                problems.append(f"class {name!r} has no images in the {split} split")
    if problems:
        raise PrepareError(
            "after splitting: " + "; ".join(problems) + ". Add images of that class or change data.split"
        )


def run(config: DataConfig, out_dir: Path, summary_path: Path, seed: int) -> dict:
    """Run the whole stage; returns the summary that was written to ``summary_path``."""
    out_dir, summary_path = Path(out_dir), Path(summary_path)
    try:
        listing: Listing = list_items(config)
    except DataSourceError as error:
        raise PrepareError(str(error)) from None
    log.info("%d images listed from %s (%s)", len(listing.items), config.source, listing.root)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        summary = _prepare_into(listing, config, work, seed)
        (work / "pool.bin").unlink()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    write_json(summary_path, summary)
    return summary


def _manifest_rows(listing: Listing, config: DataConfig, work: Path, seed: int) -> tuple[list[dict], list, list, list]:
    """Decode every image into the pool, drop or refuse the bad ones, split; (rows, pool offsets, bad, removed)."""
    decoded, offsets, bad = _decode_all(listing.items, config, work / "pool.bin", seed)
    if bad and config.on_bad_image == "fail":
        raise PrepareError(
            f"{len(bad)} unreadable image(s) (set data.on_bad_image: skip to leave them out):\n  "
            + "\n  ".join(str(error) for error in bad)
        )
    for error in bad:
        log.warning("skipped unreadable image %s", error)

    removed: list[dict] = []
    if listing.items[0].split is not None:  # the data set ships its own split
        kept, removed = _drop_cross_split_duplicates(decoded)
        keep_ids = {id(entry) for entry in kept}
        pairs = [(e, o) for e, o in zip(decoded, offsets) if id(e) in keep_ids]
        decoded, offsets = [p[0] for p in pairs], [p[1] for p in pairs]
        splits = [entry.item.split for entry in decoded]
    else:
        splits = assign_splits(
            [e.item.label for e in decoded],
            [e.item.group for e in decoded],
            [e.sha256 for e in decoded],
            config.split.as_dict(),
            seed,
            levels=[e.item.extra.get(LEVEL_COLUMN) for e in decoded],
        )

    # Ids follow the sorted source order, independent of the decode order.
    ids = {entry.item.source: f"{i:06d}" for i, entry in enumerate(sorted(decoded, key=lambda e: e.item.source))}
    rows = []
    for entry, split in zip(decoded, splits):
        item = entry.item
        rows.append(
            {
                "id": ids[item.source],
                "source": item.source,
                "sha256": entry.sha256,
                "label": item.label,
                "class": listing.classes[item.label],
                "group": item.group,
                "split": split,
                "original_height": entry.height,
                "original_width": entry.width,
                **item.extra,
            }
        )
    _check_splits(rows, listing.classes)
    return rows, offsets, bad, removed


def _write_shards(rows: list[dict], offsets: list[int], config: DataConfig, work: Path, channels: int):
    """Stream the pool into per-split shards; (writers, pHashes, means, stds) in the order written."""
    totals = Counter(row["split"] for row in rows)
    shape = (config.image_size, config.image_size, channels)
    shards = {split: store.ShardWriter(work, split, config.shard_size, totals[split], shape) for split in SPLITS}
    hashes, means, stds = [], [], []  # data health, on the stored pixels
    try:
        for row, pixels in zip(rows, tqdm(_read_pool(work / "pool.bin", offsets, shape), total=len(rows),
                                          desc="prepare: write", unit="img", mininterval=2.0, disable=None)):
            shards[row["split"]].write(pixels, row["label"], row["id"], row["group"])
            if config.near_duplicate_bits >= 0:
                hashes.append(split_checks.phash(pixels))
            means.append(float(pixels.mean()))
            stds.append(float(pixels.std()))
    finally:
        for writer in shards.values():
            writer.close()
    return shards, hashes, means, stds


def _prepare_into(listing: Listing, config: DataConfig, work: Path, seed: int) -> dict:
    rows, offsets, bad, removed = _manifest_rows(listing, config, work, seed)
    channels = 1 if config.color_mode == "grayscale" else 3
    shards, hashes, means, stds = _write_shards(rows, offsets, config, work, channels)
    data_health = {  # before the rows are sorted: hashes, means and stds follow the order written
        "near_duplicates": (split_checks.near_duplicates([r["id"] for r in rows], [r["split"] for r in rows],
                                                   [r["source"] for r in rows], hashes, config.near_duplicate_bits)
                            if config.near_duplicate_bits >= 0 else None),
        "class_statistics": split_checks.class_statistics(rows, means, stds, list(listing.classes)),
    }
    rows.sort(key=lambda row: row["id"])
    store.write_manifest(work, rows)

    hashes = Counter(row["sha256"] for row in rows)
    meta = {
        "source": config.source,
        "classes": list(listing.classes),
        "image_size": config.image_size,
        "channels": channels,
        "has_groups": any(row["group"] for row in rows),
        "splits": {split: {"count": shards[split].count, "shards": shards[split].files} for split in SPLITS},
    }
    store.write_meta(work, meta)
    return {
        "source": config.source,
        "total": len(rows),
        "classes": list(listing.classes),
        "image_size": config.image_size,
        "color_mode": config.color_mode,
        **_summarise(rows, listing.classes),
        "duplicates": {
            "clusters": sum(1 for n in hashes.values() if n > 1),
            "images": sum(n for n in hashes.values() if n > 1),
            "removed_cross_split": removed,
        },
        "bad_images": {"count": len(bad), "skipped": [{"path": e.path, "reason": e.reason} for e in bad]},
        "health": data_health,
    }
