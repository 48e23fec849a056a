"""Bad images and bad data sets: one clear error naming the files, raised before any work is
stored, nothing half-written left behind; odd but valid images are converted, not rejected."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inspectcnn.config import DataConfig
from inspectcnn.data.prepare import run as prepare
from inspectcnn.data.store import PrepareError, read_meta

from helpers import prepare_folder as run
from helpers import read_manifest as manifest
from helpers import write_image

pytestmark = pytest.mark.reliability


def test_corrupt_file_fails_listing_every_bad_file_and_writes_nothing(image_tree, tmp_path):
    root = image_tree({"a": 10, "b": 10})
    (root / "a" / "truncated.png").write_bytes((root / "a" / "a_000.png").read_bytes()[:60])
    (root / "b" / "text.png").write_text("not an image")
    (root / "b" / "empty.jpg").write_bytes(b"")
    with pytest.raises(PrepareError) as info:
        run(root, tmp_path)
    message = str(info.value)
    assert "3 unreadable" in message
    for name in ("a/truncated.png", "b/text.png", "b/empty.jpg"):
        assert name in message
    assert not (tmp_path / "prepared").exists()
    assert not (tmp_path / "summary.json").exists()
    assert not list(tmp_path.glob(".prepared.tmp-*"))


def test_failure_keeps_the_previous_output(image_tree, tmp_path):
    root = image_tree({"a": 10, "b": 10})
    _, out = run(root, tmp_path)
    before = (out / "manifest.csv").read_bytes()
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(PrepareError):
        run(root, tmp_path)
    assert (out / "manifest.csv").read_bytes() == before


def test_skip_leaves_bad_files_out_and_lists_them(image_tree, tmp_path):
    root = image_tree({"a": 10, "b": 10})
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    summary, out = run(root, tmp_path, on_bad_image="skip")
    assert summary["total"] == 20
    assert summary["bad_images"]["count"] == 1
    assert summary["bad_images"]["skipped"][0]["path"] == "a/broken.png"
    assert "a/broken.png" not in {r["source"] for r in manifest(out)}


def test_empty_class_folder_is_an_error(image_tree, tmp_path):
    root = image_tree({"a": 10, "b": 10})
    (root / "c").mkdir()
    with pytest.raises(PrepareError, match=r"empty class folder.*\bc\b"):
        run(root, tmp_path, classes=("a", "b"))


def test_single_class_is_an_error(image_tree, tmp_path):
    with pytest.raises(PrepareError, match="exactly 2 classes"):
        run(image_tree({"only": 10}), tmp_path)


def test_class_missing_from_a_split_is_an_error(image_tree, tmp_path):
    root = image_tree({"a": 20, "b": 1})
    with pytest.raises(PrepareError, match="class 'b' has no images in the (val|test) split"):
        run(root, tmp_path)


@pytest.mark.parametrize(
    ("header", "rows", "pattern"),
    [
        ("file,label", ["img/0.png,a"], r"missing column\(s\) \['path'\]"),
        ("path,label", ["img/0.png,a", "img/0.png,b"], "duplicate path"),
        ("path,label", ["../outside.png,a"], "outside the CSV's folder"),
        ("path,label", ["img/0.png,a", "img/1.png,b", "img/2.png,c"], r"labels \['c'\] are not in data.classes"),
        ("path,label", ["img/missing.png,a"], "no such file"),
    ],
)
def test_bad_csv(tmp_path, header, rows, pattern):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "img" / f"{i}.png", rng)
    (tmp_path / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    config = DataConfig(source="csv", path=str(tmp_path / "labels.csv"), classes=("a", "b"))
    with pytest.raises(PrepareError, match=pattern):
        prepare(config, tmp_path / "prepared", tmp_path / "summary.json", seed=0)


def test_special_image_modes_are_converted(tmp_path):
    from PIL import Image

    from inspectcnn.data.images import read_image

    deep = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 128))
    rgba.save(tmp_path / "rgba.png")
    rgba.convert("P").save(tmp_path / "palette.png")
    sixteen = read_image(tmp_path / "deep.png")
    assert sixteen.dtype == np.uint8 and sixteen.min() == 0 and sixteen.max() == 255
    assert read_image(tmp_path / "rgba.png", "rgb").shape == (10, 10, 3)
    assert read_image(tmp_path / "palette.png").shape == (10, 10)


def test_truncated_jpeg_is_named(image_tree, tmp_path):
    root = image_tree({"a": 10, "b": 10})
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(root / "a" / "whole.jpg", quality=90)
    data = (root / "a" / "whole.jpg").read_bytes()
    (root / "a" / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(PrepareError, match=r"a/cut\.jpg"):
        run(root, tmp_path)
    assert not (tmp_path / "prepared").exists()


def test_mixed_sizes_and_modes_are_resized_to_one_stored_size(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    sizes = [(20, 30), (64, 64), (300, 200), (17, 17)]
    for i in range(24):
        label = "a" if i % 2 else "b"
        mode = ("L", "RGB")[i % 3 == 0]
        write_image(root / label / f"{i}.png", rng, size=sizes[i % len(sizes)], mode=mode)
    summary, out = run(root, tmp_path, image_size=32)
    assert summary["total"] == 24
    from inspectcnn.data.dataset import load_split

    meta = read_meta(out)
    assert meta["image_size"] == 32 and meta["channels"] == 1
    for split in ("train", "val", "test"):
        for images, _ in load_split(out, split, image_size=32, batch_size=64):
            assert images.shape[1:] == (32, 32, 1)
            assert float(images.max()) <= 1.0
