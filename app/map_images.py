"""Maps in [0, 1] → coloured data URLs with Pillow: heatmaps and feature-map tiles as PNG, overlays on the
photo as JPEG by default (a photographic blend: encoding is ~18× faster and 8× smaller than PNG) or as
lossless PNG on request. The colours are :func:`models.decision.colorize` (the browser uses the same)."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from models.decision import colorize

HEATMAP_SIDE = 56  # heatmaps are sent small (the browser scales them smoothly); overlays at model size
OVERLAY_FORMATS = ("jpeg", "png")  # the first is the default


def overlay(pixels: np.ndarray, unit: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured map over the uint8 image the model saw (same size)."""
    return np.asarray(Image.blend(Image.fromarray(pixels), Image.fromarray(colorize(unit)), alpha))


def heatmap_and_overlay(grid_unit: np.ndarray, pixels: np.ndarray, upsample, overlay_format: str) -> dict:
    """A [0, 1] grid map as a small heatmap PNG and an overlay (JPEG or PNG) on the ``pixels`` the model saw."""
    return {"heatmap": data_url(colorize(upsample(grid_unit, HEATMAP_SIDE))),
            "overlay": data_url(overlay(pixels, np.clip(upsample(grid_unit, pixels.shape[0]), 0, 1)),
                                overlay_format.upper())}


def data_url(array: np.ndarray, fmt: str = "PNG") -> str:
    """A uint8 (H, W) or (H, W, 3) array as ``data:image/png;base64,...`` (or JPEG)."""
    buffer = io.BytesIO()
    options = {"compress_level": 1} if fmt == "PNG" else {"quality": 85}
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
