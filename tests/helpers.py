"""Helpers shared by the tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, rng: np.random.Generator, size=(40, 40), mode="L") -> Path:
    """A random image with a class-independent texture; distinct for every call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": (), "RGB": (3,)}[mode]
    pixels = rng.integers(0, 256, size=(*size, *channels), dtype=np.uint8)
    Image.fromarray(pixels, mode=mode).save(path)
    return path
