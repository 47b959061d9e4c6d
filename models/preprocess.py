"""Image decoding and preprocessing — the only Python implementation, driven by the card's ``input``.

The rule (also implemented by the browser from the same card fields): take the centred square whose side
is ``crop_fraction`` × the shorter side, resize it to ``size``×``size`` (bilinear), then
``(pixel - mean) / std`` per RGB channel. Output is float32 NHWC.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 64_000_000  # Pillow raises DecompressionBombError above 2x this


class ImageDecodeError(ValueError):
    """The bytes are not an image we can decode."""


def load_image(source: bytes | str | Path) -> Image.Image:
    """Decode ``source`` (bytes or a path) into an RGB image, EXIF orientation applied, first frame only."""
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.seek(0)
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f"image too large: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"not a decodable image ({type(error).__name__})") from None
    image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white, 16-bit is rescaled."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def crop_box(width: int, height: int, crop_fraction: float) -> tuple[float, float, float, float]:
    """The centred square (left, top, right, bottom) that the model sees."""
    side = min(width, height) * crop_fraction
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return left, top, left + side, top + side


def to_model_pixels(image: Image.Image, spec: dict) -> np.ndarray:
    """Crop and resize to the model's input size; uint8 (size, size, 3), before normalisation."""
    size = int(spec["size"])
    box = crop_box(image.width, image.height, float(spec["crop_fraction"]))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=box), dtype=np.uint8)


def normalize(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """``(pixels - mean) / std`` per channel, float32."""
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    return (pixels.astype(np.float32) - mean) / std


def preprocess(image: Image.Image, spec: dict) -> np.ndarray:
    """One RGB image → float32 (size, size, 3) exactly as the card's ``input`` describes."""
    return normalize(to_model_pixels(image, spec), spec)


def preprocess_batch(images: list[Image.Image], spec: dict) -> np.ndarray:
    """Several RGB images → float32 (N, size, size, 3)."""
    return np.stack([preprocess(image, spec) for image in images])
