"""Maps in [0, 1] → coloured data URLs with Pillow and numpy: heatmaps and feature-map tiles as PNG,
overlays on the photo as JPEG by default (a photographic blend: encoding is ~18× faster and 8× smaller
than PNG) or as lossless PNG on request."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

# A perceptually ordered dark-blue → red → yellow ramp (anchors of the "inferno" colormap).
HEATMAP_SIDE = 56  # heatmaps are sent small (the browser scales them smoothly); overlays at model size
ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)


def normalise(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the maximum after clipping negatives (a flat map stays all zero)."""
    values = np.maximum(np.asarray(values, dtype=np.float32), 0.0)
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else values


def _lookup_table() -> np.ndarray:
    """256 colours interpolated between :data:`ANCHORS`."""
    position = np.linspace(0, len(ANCHORS) - 1, 256)
    low = np.minimum(position.astype(int), len(ANCHORS) - 2)
    weight = (position - low)[:, None]
    return ((1 - weight) * ANCHORS[low] + weight * ANCHORS[low + 1]).round().astype(np.uint8)


COLOURS = _lookup_table()


def colorize(unit: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] → (H, W, 3) uint8 colours."""
    return COLOURS[(np.clip(unit, 0, 1) * 255).astype(np.uint8)]


def overlay(pixels: np.ndarray, unit: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured map over the uint8 image the model saw (same size)."""
    return np.asarray(Image.blend(Image.fromarray(pixels), Image.fromarray(colorize(unit)), alpha))


OVERLAY_FORMATS = ("jpeg", "png")  # the first is the default


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
