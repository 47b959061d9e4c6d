"""Evaluate unusual-region detection on real textures with synthetic pasted-in defects.

For each texture (scikit-image ``brick``, ``grass``, ``gravel``), normal training crops come from the top
half of the photo and held-out test crops from the bottom half; half of the test crops get one defect,
whose rectangle is the ground-truth mask. Two kinds of defect:

- ``cutpaste`` (Li et al., 2021): a rectangle cut from elsewhere in the *same* crop, brightness/contrast
  jittered and pasted at a random place. On an irregular texture such as grass it is often invisible to a
  person too: only the seams and the jitter give it away. The hard case.
- ``foreign``: a rectangle of *another* texture, its mean and contrast matched to the crop's, so only its
  structure differs — a contamination, as in the MVTec AD benchmark.

A :class:`~export.calibrate.PatchGaussian` is fitted on the training crops' patch vectors from the
version's ``features.onnx``. Image AUROC ranks the images by the same image-level score serving uses
(:func:`models.anomaly.region_scores`); pixel AUROC uses every pixel of the upsampled, smoothed maps. Each
figure is the mean over ``seeds`` independent draws of crops and defects.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from export.calibrate import REGION_TOP_FRACTION, PatchGaussian, auroc, region_grid, run_features
from models.anomaly import patch_vectors, region_distances, region_scores, smooth, upsample

TEXTURES = ("brick", "grass", "gravel")
DEFECTS = ("cutpaste", "foreign")


def crops(photo: np.ndarray, rows: tuple[int, int], count: int, side: int, size: int, rng) -> np.ndarray:
    """``count`` random ``side``² crops whose top edge lies in ``rows``, resized to ``size``² RGB uint8."""
    out = []
    for _ in range(count):
        top = rng.integers(rows[0], rows[1] - side + 1)
        left = rng.integers(0, photo.shape[1] - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).convert("RGB")
        out.append(np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack(out)


def _rectangle(size: int, rng) -> tuple[int, int]:
    """Height and width of a defect: 2–8 % of the area, aspect ratio 0.3–3.3."""
    area = rng.uniform(0.02, 0.08) * size * size
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
    return tuple(min(size - 1, max(4, int(round(v)))) for v in (np.sqrt(area / aspect), np.sqrt(area * aspect)))


def _paste(image: np.ndarray, patch: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """``patch`` (float) pasted at a random place of ``image`` → (image, mask)."""
    size, (h, w) = image.shape[0], patch.shape[:2]
    top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    out, mask = image.copy(), np.zeros((size, size), dtype=bool)
    out[top:top + h, left:left + w] = np.clip(patch, 0, 255).astype(np.uint8)
    mask[top:top + h, left:left + w] = True
    return out, mask


def cutpaste(image: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """One CutPaste defect (a jittered rectangle of the same image pasted elsewhere) → (image, mask)."""
    h, w = _rectangle(image.shape[0], rng)
    top, left = rng.integers(0, image.shape[0] - h + 1), rng.integers(0, image.shape[1] - w + 1)
    patch = image[top:top + h, left:left + w].astype(np.float32)
    patch = (patch - patch.mean()) * rng.uniform(0.7, 1.3) + patch.mean() + rng.uniform(-40, 40)
    return _paste(image, patch, rng)


def foreign(image: np.ndarray, source: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle of the ``source`` photo, its mean and std matched to ``image``'s, pasted in → (image, mask)."""
    h, w = _rectangle(image.shape[0], rng)
    top, left = rng.integers(0, source.shape[0] - h + 1), rng.integers(0, source.shape[1] - w + 1)
    patch = np.asarray(Image.fromarray(source[top:top + h, left:left + w]).convert("RGB"), dtype=np.float32)
    reference = image.astype(np.float32)
    patch = (patch - patch.mean()) / (patch.std() + 1e-6) * reference.std() + reference.mean()
    return _paste(image, patch, rng)


def evaluate(session, card: dict, feature_layers: list[dict], textures=TEXTURES, defects=DEFECTS, train: int = 60,
             test: int = 40, seeds=(0, 1, 2), position_shrinkage: float = 0.0) -> dict:
    """Image and pixel AUROC per texture and defect kind, averaged over ``seeds``, and their means."""
    from skimage import data

    size = card["input"]["size"]
    grid = region_grid(feature_layers)
    photos = {name: getattr(data, name)() for name in TEXTURES}
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for name in textures:
            photo = photos[name]
            half, side = photo.shape[0] // 2, photo.shape[0] // 4
            normal = crops(photo, (0, half), train, side, size, rng)
            vectors = patch_vectors(run_features(session, card, normal, feature_layers).patches, grid)
            model = PatchGaussian(position_shrinkage).fit(vectors)
            others = [photos[other] for other in TEXTURES if other != name]
            for kind in defects:
                held = crops(photo, (half, photo.shape[0]), test, side, size, rng)
                masks = np.zeros((test, size, size), dtype=bool)
                for i in range(test // 2):
                    held[i], masks[i] = (cutpaste(held[i], rng) if kind == "cutpaste"
                                         else foreign(held[i], others[i % len(others)], rng))
                distances = region_distances(run_features(session, card, held, feature_layers).patches,
                                             model.parameters(grid))
                scores = region_scores(distances, REGION_TOP_FRACTION)
                defective = masks.reshape(test, -1).any(axis=1)
                pixel_maps = np.stack([upsample(smooth(d), size) for d in distances])
                runs.setdefault((name, kind), []).append(
                    (auroc(scores[~defective], scores[defective]), auroc(pixel_maps[~masks], pixel_maps[masks])))
    results = {"seeds": len(seeds), "train_crops": train, "test_crops": test}
    for kind in defects:
        table = {name: {key: round(float(value), 4) for key, value in
                        zip(("image_auroc", "pixel_auroc"), np.mean(runs[name, kind], axis=0))} for name in textures}
        for key in ("image_auroc", "pixel_auroc"):
            table[f"mean_{key}"] = round(float(np.mean([table[t][key] for t in textures])), 4)
        results[kind] = table
    return results
