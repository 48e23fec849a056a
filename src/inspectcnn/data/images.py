"""Reading one image file robustly: any mode Pillow knows becomes 8-bit grayscale or RGB."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from inspectcnn.errors import UserError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm"})


class BadImageError(UserError, ValueError):
    """An image that cannot be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _to_8bit(image: Image.Image, color_mode: str) -> Image.Image:
    """16-bit, float, palette and alpha images are converted, not rejected."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Scale the actual value range to 0..255: Pillow's own I->L conversion clips at 255.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        image = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        # Composite on black: transparent regions carry no signal.
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if color_mode == "grayscale" else "RGB")


def read_image(path: str | Path, color_mode: str = "grayscale") -> np.ndarray:
    """Decode a file to uint8 (H, W) for grayscale or (H, W, 3) for rgb; BadImageError if it can't."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # decodes everything: a truncated file fails here, not later
                image = _to_8bit(image, color_mode)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image Pillow can identify (wrong extension or corrupt header)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise BadImageError(path, f"cannot decode: {error}") from None
    array = np.asarray(image)
    if array.size == 0:
        raise BadImageError(path, "image has no pixels")
    return array


def content_hash(pixels: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape: the same picture saved twice hashes alike."""
    digest = hashlib.sha256(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) to size x size: area-averaging (Pillow's box filter) when shrinking,
    bicubic when enlarging. The one resize of the project: prepare stores with it, the input pipeline
    scales to each model's size with it."""
    image = Image.fromarray(pixels)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BOX if min(image.size) > size else Image.Resampling.BICUBIC)
    return np.asarray(image)
