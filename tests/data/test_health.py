"""Data health on tiny data: near-duplicates across splits, per-class statistics that drift between
splits, label-issue candidates by confident learning (planted ones found, nothing dropped)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import prepare_folder
from PIL import Image


def _texture(rng, spread, size=48):
    return rng.normal(128, spread, (size, size)).clip(0, 255).astype(np.uint8)


def test_a_near_copy_in_another_split_is_listed_and_kept(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for split, n in (("train", 10), ("val", 4), ("test", 4)):
        for name, spread in (("ok", 10), ("ng", 60)):
            for i in range(n):
                (root / split / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(_texture(rng, spread)).save(root / split / name / f"{i}.png")
    original = np.asarray(Image.open(root / "train" / "ng" / "0.png"), dtype=np.int16)
    twin = (original + rng.integers(-2, 3, original.shape)).clip(0, 255).astype(np.uint8)  # not byte-identical
    Image.fromarray(twin).save(root / "test" / "ng" / "twin.png")
    summary, out = prepare_folder(root, tmp_path, classes=("ok", "ng"), image_size=32)
    found = summary["health"]["near_duplicates"]
    sources = [{p["a"]["source"], p["b"]["source"]} for p in found["listed"]]
    assert {"train/ng/0.png", "test/ng/twin.png"} in sources
    assert found["by_splits"].get("train-test", 0) >= 1
    assert summary["total"] == 37  # listed, never dropped


def test_a_class_whose_test_images_are_brighter_is_flagged(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "images"
    for split, n, shift in (("train", 30, 0), ("val", 10, 0), ("test", 10, 60)):
        for name in ("ok", "ng"):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.normal(100 + (shift if name == "ng" else 0), 20, (24, 24)).clip(0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.png")
    summary, _ = prepare_folder(root, tmp_path, classes=("ok", "ng"))
    differs = summary["health"]["class_statistics"]["differs_from_train"]
    assert {(d["class"], d["split"], d["measure"]) for d in differs} >= {("ng", "test", "intensity")}
    assert not [d for d in differs if d["class"] == "ok"]
    stats = summary["health"]["class_statistics"]["by_split"]
    assert stats["test"]["ng"]["intensity_mean"] > stats["train"]["ng"]["intensity_mean"] + 40


@pytest.mark.slow
def test_planted_label_errors_are_candidates_and_nothing_is_dropped(tmp_path):
    from inspectcnn.config import DataConfig, HealthConfig
    from inspectcnn.data.prepare import run as prepare
    from inspectcnn.health import label_issues

    rng = np.random.default_rng(2)
    root = tmp_path / "images"
    for name, spread, count in (("ok", 8, 60), ("ng", 70, 60)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(_texture(rng, spread)).save(root / name / f"{i:03d}.png")
    for i in range(4):  # noisy (defect-like) images filed as ok
        Image.fromarray(_texture(rng, 70)).save(root / "ok" / f"planted{i}.png")
    config = DataConfig(source="folder", path=str(root), image_size=32, classes=("ok", "ng"))
    prepare(config, tmp_path / "prepared", tmp_path / "summary.json", seed=0)
    from helpers import read_manifest

    rows = {r["id"]: r for r in read_manifest(tmp_path / "prepared")}
    result = label_issues(tmp_path / "prepared", HealthConfig(folds=3, feature_size=32), seed=0)
    flagged = {rows[c["id"]]["source"] for c in result["listed"]}
    planted = {r["source"] for r in rows.values() if "planted" in r["source"] and r["split"] != "test"}
    assert len(planted & flagged) >= len(planted) // 2 >= 1, (planted, flagged)  # found among 124 images
    assert len(flagged - planted) <= 4 and result["splits"] == ["train", "val"]
    assert not {c["split"] for c in result["listed"]} - {"train", "val"}  # the test split is not read
    assert json.loads((tmp_path / "summary.json").read_text())["total"] == 124  # nothing dropped
