"""Maps in [0, 1] → coloured PNG data URLs (heatmaps, overlays, feature-map tiles) with Pillow and numpy."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

# A perceptually ordered dark-blue → red → yellow ramp (anchors of the "inferno" colormap).
ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)


def normalise(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the maximum after clipping negatives (a flat map stays all zero)."""
    values = np.maximum(np.asarray(values, dtype=np.float32), 0.0)
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else values


def colorize(unit: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] → (H, W, 3) uint8 colours."""
    position = np.clip(unit, 0, 1) * (len(ANCHORS) - 1)
    low = np.minimum(position.astype(int), len(ANCHORS) - 2)
    weight = (position - low)[..., None]
    return ((1 - weight) * ANCHORS[low] + weight * ANCHORS[low + 1]).astype(np.uint8)


def overlay(pixels: np.ndarray, unit: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured map over the uint8 image the model saw (same size)."""
    return (pixels.astype(np.float32) * (1 - alpha) + colorize(unit).astype(np.float32) * alpha).astype(np.uint8)


def data_url(array: np.ndarray) -> str:
    """A uint8 (H, W) or (H, W, 3) array as ``data:image/png;base64,...``."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
