"""Shared fixtures: small generated image data sets and a quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helpers import write_image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def image_tree(tmp_path):
    """Factory: a folder data set {class: count} (optionally pre-split), returns its root."""

    def make(counts: dict[str, int], root: Path | None = None, seed: int = 0, size=(40, 40)) -> Path:
        root = root or tmp_path / "images"
        rng = np.random.default_rng(seed)
        for name, count in counts.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                write_image(root / name / f"{name}_{i:03d}.png", rng, size)
        return root

    return make


@pytest.fixture
def busy_cpu():
    """Every core spinning in a background process for the test's duration: a loaded machine."""
    import subprocess
    import sys

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    yield len(spinners)
    for spinner in spinners:
        spinner.kill()
        spinner.wait()
