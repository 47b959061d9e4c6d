"""Image decoding and preprocessing — the only Python implementation, driven by the card's ``input``.

The rule (also implemented by the browser from the same card fields): take the centred square whose side
is ``crop_fraction`` × the shorter side, resize it to ``size``×``size`` (bilinear), then
``(pixel - mean) / std`` per RGB channel. Output is float32 NHWC.

Decoding costs are bounded before any pixel is decoded: :func:`open_image` reads only the header (format,
size, encoding); :func:`decode_rgb` then decodes into RGB with at most one full-size temporary (non-RGB
modes are converted in bands of rows, 16-bit values rescaled in integers, no float64 copy of the image).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")  # decided by the bytes, never by name or MIME type
MAX_PIXELS = 30_000_000  # width x height, checked from the header before any pixel is decoded
MIN_SIDE = 8
MAX_JPEG_SCANS = 32  # a progressive JPEG costs a pass over the image per scan; encoders write about 10
BAND_PIXELS = 1 << 20  # pixels per band of rows when converting a non-RGB image
WHITE = (255, 255, 255)
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA", "P")  # composited on white (a palette may hold alpha)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard (raises at twice this) for any other caller


class ImageDecodeError(ValueError):
    """The bytes are not an image we accept. ``code`` names the reason (catalogue key ``errors.<code>``):
    ``not_an_image`` (no accepted format), ``image_damaged`` (accepted format, undecodable content),
    ``image_too_small``, ``slow_encoding`` / ``too_many_scans`` (too slow to decode per byte); ``values``
    fill the message."""

    def __init__(self, code: str, **values):
        super().__init__(f"{code} {values}" if values else code)
        self.code, self.values = code, values


class ImageTooLargeError(ImageDecodeError):
    """More pixels than allowed (``image_too_large``): refused before decoding."""


def open_image(data: bytes, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Image.Image:
    """Read the header of ``data`` (no pixel decoded): an accepted format, at most ``max_pixels``, both
    sides at least ``min_side``, a pixel decoder written in C and at most :data:`MAX_JPEG_SCANS` JPEG scans.
    Refused as too slow per byte: Pillow's pure-Python decoders (for our formats BMP RLE4/RLE8: a 28 KB
    RLE8 BMP declaring 49 MP took 11 s) and JPEGs with many scans (1,000 tiny scans: 14 s for 185 KB)."""
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
    if any(tile[0] in Image.DECODERS for tile in image.tile):  # Image.DECODERS: decoders written in Python
        raise ImageDecodeError("slow_encoding", format=image.format, codec=image.tile[0][0])
    scans = data.count(b"\xff\xda") if image.format in ("JPEG", "MPO") else 0  # SOS markers
    if scans > MAX_JPEG_SCANS:
        raise ImageDecodeError("too_many_scans", scans=scans, limit=MAX_JPEG_SCANS)
    return image


def decode_rgb(image: Image.Image, draft_side: int | None = None) -> Image.Image:
    """Decode an image from :func:`open_image` into RGB: first frame, EXIF orientation applied. Every
    failure raises :class:`ImageDecodeError`.

    With ``draft_side``, a JPEG is decoded smaller by libjpeg's DCT scaling (Pillow's draft mode: 1/2, 1/4 or
    1/8, much cheaper than a full decode) as long as its shorter side stays ≥ ``draft_side``. ``info["size"]``
    is always the full upright size and ``info["format"]`` what the bytes turned out to be (JPEG, PNG, MPO, …).
    """
    try:
        image.seek(0)
        full = image.size
        if draft_side and image.format in ("JPEG", "MPO") and min(full) >= 2 * draft_side:
            scale = draft_side / min(full)
            image.draft(None, (math.ceil(full[0] * scale), math.ceil(full[1] * scale)))
        decoded = image.size
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        rgb = to_rgb(image)
    except Exception:  # noqa: BLE001 — truncated data, bad EXIF, decoder errors of any kind
        raise ImageDecodeError("image_damaged", format=image.format) from None
    rgb.info["format"] = image.format
    rgb.info["size"] = full if rgb.size == decoded else full[::-1]  # turned by the EXIF orientation
    return rgb


def draft_side_for(spec: dict) -> int:
    """The shorter side a photo needs for the card's ``input``: its centred crop keeps at least twice the
    model's input size, so a drafted JPEG gives the same answer as a full decode."""
    return math.ceil(2 * int(spec["size"]) / float(spec["crop_fraction"]))


def load_image(source: bytes | str | Path, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE,
               draft_side: int | None = None) -> Image.Image:
    """Decode ``source`` (bytes or a path) into an RGB image: :func:`open_image` then :func:`decode_rgb`.
    Every failure raises :class:`ImageDecodeError` (or its subclass :class:`ImageTooLargeError`), nothing else.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return decode_rgb(open_image(data, max_pixels, min_side), draft_side)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white, 16-bit and float are rescaled.

    An RGB image is returned as is; any other is converted band by band into one new RGB image, so the
    temporaries stay at :data:`BAND_PIXELS` whatever the image size."""
    if image.mode == "RGB":
        return image
    top = None
    if image.mode.startswith("I;16"):
        top = 65535
    elif image.mode in ("I", "F"):
        top = 65535 if image.getextrema()[1] > 255 else 255
    rgb = Image.new("RGB", image.size, WHITE)
    rows = max(1, BAND_PIXELS // image.width)
    for y in range(0, image.height, rows):
        band = image.crop((0, y, image.width, min(y + rows, image.height)))
        if top is not None:
            band = Image.fromarray(rescale(np.asarray(band), top), "L")
        if band.mode in ALPHA_MODES:
            band = band.convert("RGBA")
            rgb.paste(band, (0, y), band)
        else:
            rgb.paste(band.convert("RGB"), (0, y))
    return rgb


def rescale(values: np.ndarray, top: int) -> np.ndarray:
    """Rescale 0..``top`` values to uint8 0..255 (rounded, clipped), in float32."""
    scaled = values.astype(np.float32) * np.float32(255.0 / top)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


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


def normalize(pixels: np.ndarray, spec: dict, out: np.ndarray | None = None) -> np.ndarray:
    """``(pixels - mean) / std`` per channel, float32; written into ``out`` when given (no temporaries)."""
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    out = np.subtract(pixels, mean, out=out, dtype=np.float32)
    return np.divide(out, std, out=out)


def preprocess(image: Image.Image, spec: dict, out: np.ndarray | None = None) -> np.ndarray:
    """One RGB image → float32 (size, size, 3) exactly as the card's ``input`` describes (into ``out``, e.g. a
    row of a batch, when given)."""
    return normalize(to_model_pixels(image, spec), spec, out)


def preprocess_batch(images: list[Image.Image], spec: dict) -> np.ndarray:
    """Several RGB images → float32 (N, size, size, 3)."""
    return np.stack([preprocess(image, spec) for image in images])
