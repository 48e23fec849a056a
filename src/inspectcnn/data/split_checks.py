"""Data health, measured by prepare on the stored images and written to its summary: near-duplicates
across splits (a perceptual hash, imagehash's pHash), and per-class image statistics that differ between
splits (original size, intensity; a two-sample Kolmogorov-Smirnov test against the training split).
Nothing is dropped: exact duplicates are already kept in one split; these lists are for a person to read.
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")
MAX_LISTED = 50  # pairs or images listed by name; the counts are always complete


def phash(pixels: np.ndarray) -> int:
    """64-bit perceptual hash (DCT of the 32x32 image, imagehash.phash) of uint8 (H, W[, C]) pixels."""
    import imagehash
    from PIL import Image

    image = Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels)
    return int(str(imagehash.phash(image)), 16)


def near_duplicates(ids: list[str], splits: list[str], sources: list[str], hashes: list[int],
                    max_bits: int) -> dict:
    """Pairs of images in different splits whose pHashes differ in at most ``max_bits`` bits."""
    codes = np.array(hashes, dtype=np.uint64)
    split_of = np.array(splits)
    pairs = []
    for start in range(0, len(codes), 512):
        block = codes[start:start + 512, None] ^ codes[None, :]
        distance = np.bitwise_count(block)
        rows, columns = np.nonzero(distance <= max_bits)
        for r, c in zip(rows + start, columns):
            if r < c and split_of[r] != split_of[c]:
                pairs.append((int(distance[r - start, c]), int(r), int(c)))
    pairs.sort()
    by_splits: dict[str, int] = {}
    for _, a, b in pairs:
        key = "-".join(sorted((splits[a], splits[b]), key=SPLITS.index))
        by_splits[key] = by_splits.get(key, 0) + 1
    return {
        "max_bits": max_bits, "pairs": len(pairs), "by_splits": by_splits,
        "listed": [{"bits": d, "a": {"id": ids[a], "split": splits[a], "source": sources[a]},
                    "b": {"id": ids[b], "split": splits[b], "source": sources[b]}} for d, a, b in pairs[:MAX_LISTED]],
    }


def class_statistics(rows: list[dict], means: list[float], stds: list[float], classes: list[str]) -> dict:
    """Per split and class: count, original size, mean and spread of intensity; and for each class the
    val/test distributions that differ from train (KS test p < 0.01, with the effect in intensity levels)."""
    from scipy.stats import ks_2samp

    means_, stds_ = np.asarray(means), np.asarray(stds)
    table: dict = {}
    differs = []
    for name in classes:
        members = {split: [i for i, r in enumerate(rows) if r["split"] == split and r["class"] == name]
                   for split in SPLITS}
        for split, index in members.items():
            if not index:
                continue
            heights = [int(rows[i]["original_height"]) for i in index]
            widths = [int(rows[i]["original_width"]) for i in index]
            table.setdefault(split, {})[name] = {
                "count": len(index),
                "size_median": [int(np.median(heights)), int(np.median(widths))],
                "sizes_distinct": len(set(zip(heights, widths))),
                "intensity_mean": round(float(means_[index].mean()), 2),
                "intensity_sd_between_images": round(float(means_[index].std()), 2),
                "contrast_mean": round(float(stds_[index].mean()), 2),
            }
        for split in ("val", "test"):
            a, b = members["train"], members[split]
            if len(a) < 5 or len(b) < 5:
                continue
            for measure, values in (("intensity", means_), ("contrast", stds_)):
                result = ks_2samp(values[a], values[b])
                if result.pvalue < 0.01:
                    differs.append({"class": name, "split": split, "measure": measure,
                                    "train_mean": round(float(values[a].mean()), 2),
                                    "split_mean": round(float(values[b].mean()), 2),
                                    "ks_statistic": round(float(result.statistic), 3),
                                    "p_value": float(f"{result.pvalue:.3g}")})
    return {"by_split": table, "differs_from_train": differs}
