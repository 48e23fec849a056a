"""The prepare stage on generated folder/CSV data sets: splits, duplicates, bad images, atomicity."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import prepare_folder as run
from helpers import read_manifest as manifest
from helpers import write_image

from inspectcnn.config import DataConfig, SplitConfig
from inspectcnn.data.prepare import assign_splits
from inspectcnn.data.prepare import run as prepare
from inspectcnn.data.store import read_meta


def test_folder_source_writes_shards_manifest_and_summary(image_tree, tmp_path):
    root = image_tree({"bad": 20, "good": 40})
    summary, out = run(root, tmp_path, classes=("good", "bad"), shard_size=16)
    rows = manifest(out)
    assert summary["total"] == len(rows) == 60
    assert summary["classes"] == ["good", "bad"]
    assert {r["class"]: r["label"] for r in rows} == {"good": "0", "bad": "1"}
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert sum(summary[s]["count"] for s in ("train", "val", "test")) == 60
    meta = read_meta(out)
    assert meta["splits"]["train"]["count"] == summary["train"]["count"]
    assert len(meta["splits"]["train"]["shards"]) == -(-summary["train"]["count"] // 16)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert not list(tmp_path.glob(".prepared.tmp-*"))


def test_default_classes_are_sorted_names(image_tree, tmp_path):
    summary, _ = run(image_tree({"scratch": 10, "crack": 10}), tmp_path)
    assert summary["classes"] == ["crack", "scratch"]


@pytest.mark.parametrize("names", [("good", "cracked"), ("ok", "defect"), ("Normal", "anomaly"), ("pass", "fail")])
def test_a_good_class_never_becomes_positive_by_sort_order(image_tree, tmp_path, names):
    """Sorted, 'good' would come after 'cracked' and be label 1: prepare stops and asks, naming both orders."""
    from inspectcnn.errors import UserError

    good, bad = names
    root = image_tree({good: 6, bad: 6})
    ordered = sorted(names)
    if ordered[1] != good:  # sorted order already makes the good class negative: nothing to ask
        assert run(root, tmp_path)[0]["classes"] == ordered
        return
    with pytest.raises(UserError, match=rf"would make '{good}' the positive class.*data.classes: \[{good}, {bad}\]"
                                              rf".*or \[{bad}, {good}\]"):
        run(root, tmp_path)
    summary, out = run(root, tmp_path, classes=(good, bad))
    assert summary["classes"] == [good, bad] and {r["class"]: r["label"] for r in manifest(out)}[bad] == "1"


def test_exact_duplicates_stay_in_one_split(image_tree, tmp_path):
    root = image_tree({"a": 30, "b": 30})
    for i in range(10):  # ten images, each present three times
        for copy in (1, 2):
            shutil.copy(root / "a" / f"a_{i:03d}.png", root / "a" / f"copy{copy}_{i:03d}.png")
    summary, out = run(root, tmp_path)
    rows = manifest(out)
    assert summary["duplicates"]["clusters"] == 10 and summary["duplicates"]["images"] == 30
    by_hash: dict[str, set[str]] = {}
    for row in rows:
        by_hash.setdefault(row["sha256"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in by_hash.values())


def test_presplit_folder_keeps_its_split_and_drops_leaked_duplicates(image_tree, tmp_path):
    root = tmp_path / "presplit"
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        image_tree({"ok": n, "ng": n}, root=root / split, seed=hash(split) % 1000)
    shutil.copy(root / "train" / "ok" / "ok_000.png", root / "test" / "ok" / "leak.png")
    summary, out = run(root, tmp_path, classes=("ok", "ng"))
    rows = manifest(out)
    assert {r["split"] for r in rows if r["source"].startswith("train/")} == {"train"}
    assert {r["split"] for r in rows if r["source"].startswith("test/")} == {"test"}
    assert summary["duplicates"]["removed_cross_split"] == [
        {"path": "test/ok/leak.png", "split": "test", "duplicate_in": "train"}
    ]
    assert summary["total"] == 40


def test_csv_source_with_groups(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["path,label,group"]
    for i in range(40):
        label, group = ("scratch" if i % 3 == 0 else "clean"), ("line1" if i % 2 else "line2")
        write_image(tmp_path / "img" / f"{i}.png", rng)
        lines.append(f"img/{i}.png,{label},{group}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    config = DataConfig(source="csv", path=str(tmp_path / "labels.csv"), image_size=16, classes=("clean", "scratch"))
    summary = prepare(config, tmp_path / "prepared", tmp_path / "summary.json", seed=0)
    assert summary["total"] == 40
    assert set(summary["train"]["by_group"]) == {"line1", "line2"}


def test_split_allocation_is_within_one_item_per_stratum():
    rng = np.random.default_rng(0)
    labels = list(rng.integers(0, 2, 997))
    groups = list(rng.choice(["m", "p", "q"], 997))
    fractions = SplitConfig(train=0.6, val=0.25, test=0.15).as_dict()
    splits = assign_splits(labels, groups, [str(i) for i in range(997)], fractions, seed=5)
    for key in {(l, g) for l, g in zip(labels, groups)}:
        members = [s for s, l, g in zip(splits, labels, groups) if (l, g) == key]
        for name, fraction in fractions.items():
            assert abs(members.count(name) - fraction * len(members)) <= 1
