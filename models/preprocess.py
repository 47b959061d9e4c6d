"""Image decoding and preprocessing — the only Python implementation, driven by the card's ``input``.

The rule (also implemented by the browser from the same card fields): take the centred square whose side
is ``crop_fraction`` × the shorter side, resize it to ``size``×``size`` (bilinear), then
``(pixel - mean) / std`` per RGB channel. Output is float32 NHWC.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")  # decided by the bytes, never by name or MIME type
MAX_PIXELS = 50_000_000  # width x height, checked from the header before any pixel is decoded
MIN_SIDE = 8
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard (raises at twice this) for any other caller


class ImageDecodeError(ValueError):
    """The bytes are not an image we accept. ``code`` names the reason (catalogue key ``errors.<code>``):
    ``not_an_image`` (no accepted format), ``image_damaged`` (accepted format, undecodable content),
    ``image_too_small``; ``values`` fill the message."""

    def __init__(self, code: str, **values):
        super().__init__(f"{code} {values}" if values else code)
        self.code, self.values = code, values


class ImageTooLargeError(ImageDecodeError):
    """More pixels than allowed (``image_too_large``): refused before decoding."""


def load_image(source: bytes | str | Path, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Image.Image:
    """Decode ``source`` (bytes or a path) into an RGB image: EXIF orientation applied, first frame only.

    Only :data:`ALLOWED_FORMATS` are tried; the size is checked from the header before decoding. Every
    failure raises :class:`ImageDecodeError` (or its subclass :class:`ImageTooLargeError`), nothing else.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    max_mp = round(max_pixels / 1e6, 1)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise ImageTooLargeError("image_too_large", max_mp=max_mp) from None
    except Exception:  # noqa: BLE001 — any failure to identify hostile bytes means "not an image"
        raise ImageDecodeError("not_an_image") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError("image_too_large", max_mp=max_mp)
    if min(width, height) < min_side:
        raise ImageDecodeError("image_too_small", width=width, height=height, min_side=min_side)
    try:
        image.seek(0)
        image.load()
        rgb = to_rgb(ImageOps.exif_transpose(image))
    except Exception:  # noqa: BLE001 — truncated data, bad EXIF, decoder errors of any kind
        raise ImageDecodeError("image_damaged", format=image.format) from None
    rgb.info["format"] = image.format  # what the bytes turned out to be (JPEG, PNG, MPO, …)
    return rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white, 16-bit and float are rescaled."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.rint(array / top * 255.0), 0, 255).astype(np.uint8), "L")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
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
