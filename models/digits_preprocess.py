"""A photo or drawing of ONE handwritten digit → an MNIST-like 28×28 input, step by step.

The same steps MNIST's authors used, made explicit so students can watch them: greyscale → shrink (or
enlarge) to a working size → contrast stretch → white ink on black (the border decides the polarity), minus
the paper's local level (uneven light: the least ink in a window wider than a stroke) → Otsu threshold →
8-connected components: the largest one plus the pieces close to it (the bar of a 5, a 4 drawn in two
strokes) → crop → longest side scaled to 20 px keeping the aspect (antialiased triangle filter) →
centre of mass placed at the centre of a 28×28 frame. Values in [0, 1], white digit on black.

Refusals instead of guesses (``Result.reason``): ``empty`` (no contrast between the 0.5 % darkest and
brightest values: blank canvas, plain paper), ``no_digit`` (nothing large enough, "ink" covering half the
picture, or a blob touching all four edges: texture, not writing), ``several_digits`` (another large
component away from the first one).

The browser runs the same steps in web/static/js/digits_preprocess.js; golden vectors written by
tests/test_digits_preprocess.py prove both give the same numbers (same float64 operations in the same
order, integer histograms for Otsu). Serving and training both call :func:`preprocess`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SIZE = 28  # MNIST frame
BOX = 20  # the digit's longest side inside the frame
WORK_SIDE = 160  # larger pictures are shrunk to this longest side first
SMALL_SIDE = 32  # smaller ones (an 8×8 scan, a 28×28 crop) are enlarged to it: thresholds need some pixels
MIN_CONTRAST = 0.2  # (bright − dark) grey / 255 below this: nothing drawn (paper noise, blank canvas)
TAIL = 0.005  # dark and bright are the 0.5 % and 99.5 % points of the grey values (specks do not count)
BACKGROUND_RADIUS = 16  # the paper's level under a pixel: the least ink within this many working pixels
# (a square of 33 px: wider than a stroke, a fifth of a 160 px photo; a small scan is covered whole, so
# its level is its minimum and nothing changes)
NOISE_FRACTION = 0.02  # components smaller than this × the largest are dust, ignored
PART_MARGIN = 0.15  # a component within this × the digit's longest side of its box is part of it
SEVERAL_FRACTION = 0.25  # a separate component at least this × the digit's area: another digit
MIN_DIGIT_FRACTION = 0.08  # the digit's longest side must reach this × the picture's longest side
MAX_INK_FRACTION = 0.5  # more of the picture darker than mid-grey (before the paper level): no digit
GREY = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma


@dataclass
class Result:
    """``input`` (28×28 float32) when a digit was found, else ``reason``; ``steps`` are the intermediate
    images (float arrays in [0, 1]) shown on the page; ``info`` the numbers behind each decision."""
    input: np.ndarray | None
    reason: str | None
    steps: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def _round(value: float) -> int:
    """Half up, as JavaScript's Math.round (Python's round() rounds half to even)."""
    return math.floor(value + 0.5)


def _sequential_sum(values) -> float:
    """Left-to-right sum (numpy's pairwise sum could differ from the JS loop in the last bit)."""
    total = 0.0
    for value in values:
        total += value
    return total


def _taps(n_in: int, n_out: int) -> list[tuple[int, list[float]]]:
    """Triangle-filter weights (first input index, weights) per output pixel; widened when shrinking."""
    scale = n_out / n_in
    support = max(1.0, 1.0 / scale)
    taps = []
    for i in range(n_out):
        centre = (i + 0.5) / scale
        low = max(0, math.floor(centre - support))
        high = min(n_in, math.ceil(centre + support))
        weights = [max(0.0, 1.0 - abs((j + 0.5 - centre) / support)) for j in range(low, high)]
        total = _sequential_sum(weights)
        taps.append((low, [weight / total for weight in weights]))
    return taps


def _resize_rows(image: np.ndarray, n_out: int) -> np.ndarray:
    out = np.empty((n_out, image.shape[1]))
    for i, (low, weights) in enumerate(_taps(image.shape[0], n_out)):
        acc = np.zeros(image.shape[1])
        for k, weight in enumerate(weights):
            acc = acc + weight * image[low + k]
        out[i] = acc
    return out


def _min_filter(image: np.ndarray, radius: int) -> np.ndarray:
    """Minimum over ``[i − radius, i + radius]`` along the rows (clipped at the edges); exact, as in JS."""
    out = image.copy()
    for shift in range(1, radius + 1):
        out[shift:] = np.minimum(out[shift:], image[:-shift])
        out[:-shift] = np.minimum(out[:-shift], image[shift:])
    return out


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Separable antialiased triangle-filter resize of a float64 2-D array (rows first, then columns)."""
    return _resize_rows(_resize_rows(image, height).T, width).T


def grey(rgb: np.ndarray) -> np.ndarray:
    """Luma 0–255 (float64) of an (H, W, 3) uint8 array; a 2-D array is taken as grey already."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.float64)
    pixels = rgb.astype(np.float64)
    return GREY[0] * pixels[..., 0] + GREY[1] * pixels[..., 1] + GREY[2] * pixels[..., 2]


def otsu(levels: np.ndarray) -> int:
    """Otsu's threshold of integer levels 0–255: the level t maximising the between-class variance of
    (≤ t, > t); the first one on ties."""
    hist = np.bincount(levels.ravel(), minlength=256).tolist()
    count = levels.size
    total = sum(i * h for i, h in enumerate(hist))
    weight_low = sum_low = 0
    best, threshold = -1.0, 0
    for level in range(256):
        weight_low += hist[level]
        if weight_low == 0:
            continue
        weight_high = count - weight_low
        if weight_high == 0:
            break
        sum_low += level * hist[level]
        difference = sum_low / weight_low - (total - sum_low) / weight_high
        between = weight_low * weight_high * difference * difference
        if between > best:
            best, threshold = between, level
    return threshold


def components(mask: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """8-connected components of a boolean mask: (label image, one dict per component with ``area``,
    ``box`` (top, bottom, left, right; inclusive) and ``first`` (raster index of its first pixel)),
    components sorted by area (largest first), then by ``first``; labels are 1-based in that order."""
    height, width = mask.shape
    runs = []  # (row, start, end) half-open, in raster order
    for y in range(height):
        row = np.concatenate(([0], mask[y].astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(row))
        runs.extend((y, int(s), int(e)) for s, e in zip(edges[::2], edges[1::2]))
    parent = list(range(len(runs)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous, current = [], []
    for index, (y, start, end) in enumerate(runs):
        if current and runs[current[0]][0] != y:
            previous, current = (current if runs[current[0]][0] == y - 1 else []), []
        for other in previous:
            _, s, e = runs[other]
            if s <= end and start <= e:  # touching, diagonals included
                a, b = find(index), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        current.append(index)
    groups: dict[int, dict] = {}
    for index, (y, start, end) in enumerate(runs):
        group = groups.setdefault(find(index), {"area": 0, "box": [y, y, start, end - 1],
                                                "first": y * width + start, "runs": []})
        group["area"] += end - start
        box = group["box"]
        box[1], box[2], box[3] = y, min(box[2], start), max(box[3], end - 1)
        group["runs"].append(index)
    found = sorted(groups.values(), key=lambda g: (-g["area"], g["first"]))
    labels = np.zeros((height, width), np.int32)
    for label, group in enumerate(found, start=1):
        for index in group.pop("runs"):
            y, start, end = runs[index]
            labels[y, start:end] = label
    return labels, found


def _near(box, other, margin: float) -> bool:
    return (other[0] <= box[1] + margin and other[1] >= box[0] - margin
            and other[2] <= box[3] + margin and other[3] >= box[2] - margin)


def preprocess(rgb: np.ndarray) -> Result:
    """The MNIST-like input of one digit in an (H, W, 3) uint8 picture (or (H, W) grey 0–255)."""
    luma = grey(rgb)
    height, width = luma.shape
    longest = max(height, width)
    if longest > WORK_SIDE or longest < SMALL_SIDE:
        side = WORK_SIDE if longest > WORK_SIDE else SMALL_SIDE
        height, width = max(1, _round(height * side / longest)), max(1, _round(width * side / longest))
        luma = resize(luma, height, width)
    steps = {"grey": luma / 255.0}
    ordered = np.sort(luma, axis=None)
    tail = math.floor(TAIL * (ordered.size - 1))
    low, high = float(ordered[tail]), float(ordered[ordered.size - 1 - tail])
    info = {"contrast": (high - low) / 255.0}
    if info["contrast"] < MIN_CONTRAST:
        return Result(None, "empty", steps, info)
    stretched = np.clip((luma - low) / (high - low), 0.0, 1.0)
    border = np.concatenate((stretched[0], stretched[-1], stretched[1:-1, 0], stretched[1:-1, -1]))
    info["dark_background"] = bool(_sequential_sum(border.tolist()) / border.size < 0.5)
    ink = stretched if info["dark_background"] else 1.0 - stretched
    info["ink_fraction"] = int(np.count_nonzero(ink > 0.5)) / ink.size
    if info["ink_fraction"] > MAX_INK_FRACTION:
        steps["ink"] = ink
        return Result(None, "no_digit", steps, info)
    ink = ink - _min_filter(_min_filter(ink, BACKGROUND_RADIUS).T, BACKGROUND_RADIUS).T  # the paper's own level removed
    peak = float(ink.max())
    ink = ink / peak if peak > 0 else ink
    steps["ink"] = ink
    levels = np.floor(ink * 255.0 + 0.5).astype(np.int64)
    info["threshold"] = otsu(levels)
    mask = levels > info["threshold"]
    labels, found = components(mask)
    if not found:
        steps["mask"] = mask.astype(np.float64)
        return Result(None, "no_digit", steps, info)
    main = found[0]
    significant = [c for c in found if c["area"] >= NOISE_FRACTION * main["area"]]
    box, keep, others = list(main["box"]), [1], []
    for label, part in enumerate(significant[1:], start=2):
        margin = PART_MARGIN * max(box[1] - box[0] + 1, box[3] - box[2] + 1)
        if _near(box, part["box"], margin):
            keep.append(label)
            box = [min(box[0], part["box"][0]), max(box[1], part["box"][1]),
                   min(box[2], part["box"][2]), max(box[3], part["box"][3])]
        else:
            others.append(part)
    kept = np.isin(labels, keep)
    steps["mask"] = np.where(kept, 1.0, np.where(mask, 0.35, 0.0))  # kept white, ignored pieces grey
    top, bottom, left, right = box
    info.update(box=box, components=len(found), parts=len(keep), separate=len(others))
    if (max(bottom - top + 1, right - left + 1) < MIN_DIGIT_FRACTION * max(height, width)
            or box == [0, height - 1, 0, width - 1]):  # too small, or a texture touching every edge
        return Result(None, "no_digit", steps, info)
    if any(part["area"] >= SEVERAL_FRACTION * main["area"] for part in others):
        return Result(None, "several_digits", steps, info)
    crop = np.where(kept, ink, 0.0)[top:bottom + 1, left:right + 1]
    steps["crop"] = crop
    rows, cols = crop.shape
    scale = BOX / max(rows, cols)
    rows, cols = max(1, _round(rows * scale)), max(1, _round(cols * scale))
    small = resize(crop, rows, cols)
    peak = float(small.max())
    small = small / peak if peak > 0 else small
    steps["scaled"] = small
    mass = centre_y = centre_x = 0.0
    for y, row in enumerate(small.tolist()):  # raster order, as the JS loop
        for x, value in enumerate(row):
            mass += value
            centre_y += value * (y + 0.5)
            centre_x += value * (x + 0.5)
    centre_y, centre_x = centre_y / mass, centre_x / mass
    y0 = min(max(_round(SIZE / 2 - centre_y), 0), SIZE - rows)
    x0 = min(max(_round(SIZE / 2 - centre_x), 0), SIZE - cols)
    frame = np.zeros((SIZE, SIZE))
    frame[y0:y0 + rows, x0:x0 + cols] = small
    steps["input"] = frame
    info["offset"] = [y0, x0]
    return Result(frame.astype(np.float32), None, steps, info)

