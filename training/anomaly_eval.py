"""Evaluate unusual-region detection on real textures with synthetic CutPaste defects.

For each texture (scikit-image ``brick``, ``grass``, ``gravel``…), normal training crops come from the top
half of the photo and held-out test crops from the bottom half; half of the test crops get a CutPaste
defect (Li et al., 2021): a rectangle cut from elsewhere in the same crop, colour-jittered and pasted at a
random place — the pasted rectangle is the ground-truth mask. A :class:`~training.calibrate.PatchGaussian`
is fitted on the training crops' patch vectors from the version's ``features.onnx``; image AUROC uses the
maximum of each smoothed map, pixel AUROC every pixel of the upsampled maps.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from app.anomaly import patch_vectors, region_maps, upsample
from training.calibrate import PatchGaussian, auroc, region_layers, run_features

TEXTURES = ("brick", "grass", "gravel")


def crops(photo: np.ndarray, rows: tuple[int, int], count: int, side: int, size: int, rng) -> np.ndarray:
    """``count`` random ``side``² crops whose top edge lies in ``rows``, resized to ``size``² RGB uint8."""
    out = []
    for _ in range(count):
        top = rng.integers(rows[0], rows[1] - side + 1)
        left = rng.integers(0, photo.shape[1] - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).convert("RGB")
        out.append(np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack(out)


def cutpaste(image: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """One CutPaste defect (2–8 % of the area, aspect 0.3–3.3, brightness/contrast jitter) → (image, mask)."""
    size = image.shape[0]
    area = rng.uniform(0.02, 0.08) * size * size
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
    h, w = (min(size - 1, max(4, int(round(v)))) for v in (np.sqrt(area / aspect), np.sqrt(area * aspect)))
    sy, sx, ty, tx = (rng.integers(0, size - d + 1) for d in (h, w, h, w))
    patch = image[sy:sy + h, sx:sx + w].astype(np.float32)
    patch = (patch - patch.mean()) * rng.uniform(0.7, 1.3) + patch.mean() + rng.uniform(-40, 40)
    out, mask = image.copy(), np.zeros((size, size), dtype=bool)
    out[ty:ty + h, tx:tx + w] = np.clip(patch, 0, 255).astype(np.uint8)
    mask[ty:ty + h, tx:tx + w] = True
    return out, mask


def evaluate(session, card: dict, feature_layers: list[dict], textures=TEXTURES, train: int = 40, test: int = 20,
             seed: int = 0, position_shrinkage: float = 0.0) -> dict:
    """Image and pixel AUROC per texture (and their means) for the patch model on CutPaste defects."""
    from skimage import data

    rng = np.random.default_rng(seed)
    size = card["input"]["size"]
    layers = region_layers(feature_layers)
    grid = layers[len(layers) // 2]["height"]
    results = {}
    for name in textures:
        photo = getattr(data, name)()
        half, side = photo.shape[0] // 2, photo.shape[0] // 4
        normal = crops(photo, (0, half), train, side, size, rng)
        held = crops(photo, (half, photo.shape[0]), test, side, size, rng)
        masks = np.zeros((test, size, size), dtype=bool)
        for i in range(test // 2):
            held[i], masks[i] = cutpaste(held[i], rng)
        model = PatchGaussian(position_shrinkage).fit(patch_vectors(run_features(session, card, normal, feature_layers).patches, grid))
        maps = region_maps(run_features(session, card, held, feature_layers).patches, model.parameters(grid))
        image_scores = maps.reshape(test, -1).max(axis=1)
        defective = masks.reshape(test, -1).any(axis=1)
        pixel_maps = np.stack([upsample(m, size) for m in maps])
        results[name] = {"image_auroc": round(auroc(image_scores[~defective], image_scores[defective]), 4),
                         "pixel_auroc": round(auroc(pixel_maps[~masks], pixel_maps[masks]), 4)}
    for key in ("image_auroc", "pixel_auroc"):
        results[f"mean_{key}"] = round(float(np.mean([results[t][key] for t in textures])), 4)
    return results
