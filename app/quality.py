"""Image-quality checks from pixels: blur, over/under-exposure, low contrast, tiny resolution, near-uniform.

Measures are taken on the grey (luma) image, shrunk so its longer side is at most :data:`WORK_SIDE`, so
they do not depend on the upload's size. Thresholds were set on the real photos of
``training/real_photos.py``: every sharp photo has a Laplacian variance ≥ 65 (the moon, the softest),
Gaussian blur of radius 2 brings most below 40 and radius 4 all below 7.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

WORK_SIDE = 512
BLUR_BELOW = 40.0  # variance of the Laplacian of the 0–255 luma
DARK_MEAN_BELOW, BRIGHT_MEAN_ABOVE = 40.0, 215.0  # mean luma
LOW_CONTRAST_BELOW = 32.0  # 2nd → 98th percentile range of the luma
UNIFORM_STD_BELOW = 4.0  # standard deviation of every RGB channel


def shrink(image: Image.Image, side: int) -> Image.Image:
    """``image`` reduced by an integer box filter (fast) until its longer side is at most ~``side``."""
    factor = max(image.size) // side
    return image.reduce(factor) if factor > 1 else image


def luma(image: Image.Image) -> np.ndarray:
    """Grey levels (uint8) of ``image`` shrunk to about :data:`WORK_SIDE` on its longer side."""
    return np.asarray(shrink(image, WORK_SIDE).convert("L"))


def percentiles(grey: np.ndarray, *qs: float) -> list[float]:
    """Percentiles of uint8 values from their histogram (no sorting)."""
    cumulative = np.cumsum(np.bincount(grey.ravel(), minlength=256)) / grey.size
    return [float(np.searchsorted(cumulative, q / 100)) for q in qs]


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low when the image has no sharp edges."""
    if min(grey.shape) < 3:
        return 0.0
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(lap.var())


def measure(image: Image.Image) -> dict:
    """The numbers the checks and the pixel tags read."""
    grey = luma(image)
    low, high = percentiles(grey, 2, 98)
    grey = grey.astype(np.float32)
    channel_std = np.asarray(shrink(image, 64), dtype=np.float32)
    return {
        "width": image.width, "height": image.height,
        "brightness": float(grey.mean()), "contrast": float(high - low),
        "sharpness": laplacian_variance(grey),
        "colour_std": float(channel_std.reshape(-1, 3).std(axis=0).max()),
    }


def checks(measures: dict, min_side: int) -> list[dict]:
    """Every check with its value, threshold and verdict; ``min_side``: below it the image is tiny."""
    uniform = measures["colour_std"] < UNIFORM_STD_BELOW
    found = [
        ("tiny_resolution", min(measures["width"], measures["height"]), "below", min_side),
        ("near_uniform", measures["colour_std"], "below", UNIFORM_STD_BELOW),
        ("underexposed", measures["brightness"], "below", DARK_MEAN_BELOW),
        ("overexposed", measures["brightness"], "above", BRIGHT_MEAN_ABOVE),
        ("low_contrast", measures["contrast"], "below", LOW_CONTRAST_BELOW),
        ("blurry", measures["sharpness"], "below", BLUR_BELOW),
    ]
    results = []
    for code, value, direction, threshold in found:
        flagged = value < threshold if direction == "below" else value > threshold
        if code == "blurry" and uniform:
            flagged = False  # sharpness cannot be judged on a uniform image
        results.append({"check": code, "value": round(float(value), 2), "threshold": threshold,
                        "flagged": bool(flagged), "direction": direction})
    return results
