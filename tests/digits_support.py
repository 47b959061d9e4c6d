"""Pictures of digits for the digits tests: strokes drawn as a student would (the same paths the browser
test draws with the mouse), golden cases for the Python ↔ JS preprocessing, and a trained registry
cached under pytest's cache folder, keyed by the hash of the code that makes it."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from models import digits_preprocess

REPO = Path(__file__).resolve().parent.parent
CANVAS = 280  # the page's drawing canvas
PEN = 18  # its line width
TRAINING_CODE = ("training/digits.py", "training/digits_data.py", "models/digits_preprocess.py",
                 "export/digits_export.py", "cli/digits.py")


def _arc(cx, cy, rx, ry, start, end, steps=24):
    """Points of an ellipse arc, angles in degrees (0 = right, 90 = down: screen coordinates)."""
    return [(cx + rx * math.cos(math.radians(start + (end - start) * i / steps)),
             cy + ry * math.sin(math.radians(start + (end - start) * i / steps))) for i in range(steps + 1)]


def _line(points, step=6.0):
    """A polyline resampled every ``step`` px (what a mouse reports while moving)."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        count = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
        out += [(x0 + (x1 - x0) * i / count, y0 + (y1 - y0) * i / count) for i in range(1, count + 1)]
    return out


# Each digit: strokes on the 280×280 canvas, as lists of (x, y) points in drawing order.
STROKES = {
    0: [_arc(140, 140, 62, 95, -90, 275)],
    1: [[(120, 70), (150, 45), (150, 240)]],
    2: [_arc(140, 95, 55, 48, 180, 360) + [(80, 235), (205, 235)]],
    3: [_arc(135, 88, 52, 42, 200, 450) + _arc(135, 180, 60, 52, -90, 150)],
    4: [[(175, 240), (175, 45), (70, 170), (215, 170)]],
    5: [[(195, 50), (100, 50), (92, 125)] + _arc(138, 172, 58, 55, -125, 150)],
    6: [[(180, 45), (120, 95)] + _arc(140, 180, 55, 55, 200, 560)],
    7: [[(70, 55), (210, 55), (125, 240)]],
    8: [_arc(140, 90, 45, 45, 90, 450) + _arc(140, 182, 55, 52, -90, 270)],
    9: [_arc(135, 95, 52, 48, 0, 360) + [(187, 95), (180, 240)]],
}


def stroke_paths(digit: int) -> list[list[tuple[float, float]]]:
    return [_line(stroke) for stroke in STROKES[digit]]


def drawn(digit: int, size: tuple[int, int] = (CANVAS, CANVAS), offset=(0, 0), pen: int = PEN) -> Image.Image:
    """The digit's strokes in black on white, as the page's canvas paints them."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for stroke in stroke_paths(digit):
        points = [(x + offset[0], y + offset[1]) for x, y in stroke]
        draw.line(points, fill="black", width=pen, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill="black")
    return image


def golden_cases() -> list[dict]:
    """Pictures that exercise every branch of the preprocessing (RGB arrays) and Python's results."""
    from training.digits_data import MNIST_DIR, sklearn_digits

    rng = np.random.default_rng(16)
    pictures = {"blank": np.full((40, 40, 3), 255, np.uint8)}
    pictures["seven_shrunk"] = np.asarray(drawn(7).resize((200, 150)))
    two = Image.new("RGB", (150, 70), "white")
    two.paste(drawn(1).resize((60, 60)), (5, 5))
    two.paste(drawn(4).resize((60, 60)), (85, 5))
    pictures["two_digits"] = np.asarray(two)
    speck = np.full((100, 100, 3), 255, np.uint8)
    speck[50:53, 40:43] = 0
    pictures["speck"] = speck
    two_mnist = np.asarray(json.loads((MNIST_DIR / "2.json").read_text())["data"][123 * 784:124 * 784]).reshape(28, 28)
    pictures["mnist_as_is"] = np.repeat(np.floor(two_mnist * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    small, _ = sklearn_digits()
    pictures["sklearn_8x8"] = np.repeat(np.floor(small[5] + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    five = drawn(5).resize((112, 112))
    draw = ImageDraw.Draw(five)
    draw.line([(70, 14), (96, 14)], fill="black", width=7)  # a bar drawn apart, near the digit
    draw.ellipse((4, 104, 6, 106), fill="black")  # dust in a corner
    pictures["five_with_bar"] = np.asarray(five)
    paper = np.linspace(150, 235, 96)[None, :, None] + rng.normal(0, 6, (128, 96, 3))
    ink = np.asarray(drawn(3).resize((96, 128)).convert("L"), np.float64)[..., None] / 255.0
    pictures["photo_like"] = np.clip(paper * ink + 40 * (1 - ink), 0, 255).astype(np.uint8)
    cases = []
    for name, rgb in pictures.items():
        result = digits_preprocess.preprocess(rgb)
        cases.append({"name": name, "height": rgb.shape[0], "width": rgb.shape[1], "pixels": rgb.ravel().tolist(),
                      "reason": result.reason, "threshold": result.info.get("threshold"),
                      "box": result.info.get("box"),
                      "input": None if result.input is None else result.input.ravel().tolist(),
                      "steps": {step: list(image.shape) for step, image in result.steps.items()}})
    return cases


def code_hash() -> str:
    digest = hashlib.sha256()
    for path in TRAINING_CODE:
        digest.update((REPO / path).read_bytes())
    return digest.hexdigest()[:16]


def trained_registry(cache_dir: Path, build) -> Path:
    """A registry folder built once by ``build(folder)`` and kept in ``cache_dir/<code hash>`` (older
    builds removed); rebuilt when the training code changes."""
    target = cache_dir / code_hash()
    if not (target / "done.json").is_file():
        shutil.rmtree(cache_dir, ignore_errors=True)
        staging = cache_dir / ".building"
        staging.mkdir(parents=True)
        summary = build(staging / "store")
        (staging / "done.json").write_text(json.dumps(summary, default=str))
        staging.rename(target)
    return target / "store"
