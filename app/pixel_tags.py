"""Tags computed from pixels: dominant named colours, brightness and sharpness (names in the catalogue).

Colours: every pixel of a ~64-pixel thumbnail gets the name of its hue (or black / grey / white when it has
little colour; brown for dark oranges and reds); a name covering at least :data:`MIN_SHARE` of the image
is a dominant colour. Brightness and sharpness reuse the measures of :mod:`app.quality`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from app import quality

MIN_SHARE = 0.10
HUES = [(15, "red"), (40, "orange"), (70, "yellow"), (160, "green"), (195, "cyan"), (255, "blue"),
        (290, "purple"), (335, "pink"), (360, "red")]  # upper hue bound (degrees) → name


def colour_names(image: Image.Image) -> np.ndarray:
    """The colour name of every pixel of a ~64-pixel thumbnail (flattened)."""
    hsv = np.asarray(quality.shrink(image, 64).convert("HSV"), dtype=np.float32)
    hue, saturation, value = hsv[..., 0].ravel() * 360 / 255, hsv[..., 1].ravel() / 255, hsv[..., 2].ravel() / 255
    bounds = np.array([bound for bound, _ in HUES])
    names = np.array([name for _, name in HUES])[np.minimum(np.searchsorted(bounds, hue), len(HUES) - 1)]
    names = np.where((names == "orange") & (value < 0.6) | (names == "red") & (value < 0.45) & (saturation < 0.7),
                     "brown", names)
    grey = np.where(value < 0.2, "black", np.where(value > 0.85, "white", "grey"))
    return np.where((saturation < 0.2) | (value < 0.2), grey, names)


def dominant_colours(image: Image.Image, top: int = 3) -> list[dict]:
    names, counts = np.unique(colour_names(image), return_counts=True)
    shares = counts / counts.sum()
    order = np.argsort(shares)[::-1][:top]
    return [{"colour": str(names[i]), "share": round(float(shares[i]), 3)} for i in order if shares[i] >= MIN_SHARE]


def level(value: float, low: float, high: float) -> str:
    return "low" if value < low else "high" if value > high else "medium"


def tags(image: Image.Image, measures: dict | None = None) -> dict:
    """Colour, brightness and sharpness tags; ``name`` fields are catalogue keys' last part."""
    measures = measures or quality.measure(image)
    return {
        "colours": dominant_colours(image),
        "brightness": {"value": round(measures["brightness"] / 255, 3),
                       "level": level(measures["brightness"], quality.DARK_MEAN_BELOW * 2, quality.BRIGHT_MEAN_ABOVE - 40)},
        "sharpness": {"value": round(measures["sharpness"], 1),
                      "level": level(measures["sharpness"], quality.BLUR_BELOW * 2.5, 1000.0)},
    }
