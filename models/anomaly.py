"""Anomaly scores with numpy from a version's stored parameters (fitting is in calibration, on the training side).

Every score grows with how unusual the input is, so one rule reads them all: *unusual when the score is
above the card's threshold*.

- Out-of-distribution (whole image): ``mahalanobis`` — squared Mahalanobis distance of the embedding to
  the nearest class mean under one shared, shrunk covariance; ``energy`` — minus the log-sum-exp of the
  head's logits for the model's classes; ``max_softmax`` — minus the top class probability.
- Unusual regions (PaDiM-style): a patch vector per position of a feature grid (intermediate feature maps
  resampled to one grid and concatenated) scored by its Mahalanobis distance to that position's mean. The
  map shown is smoothed; the image's score is the mean of its most unusual ``top_fraction`` of patches
  (a defect covers a few per cent of the image: a single maximum is noisier, a mean over all too diluted).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

OOD_SCORES = ("mahalanobis", "energy", "max_softmax")


def mahalanobis(vectors: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared distance of each row of ``vectors`` (N, D) to the nearest of ``means`` (K, D)."""
    diff = vectors[:, None, :].astype(np.float32) - means[None].astype(np.float32)  # (N, K, D)
    return ((diff @ precision.astype(np.float32)) * diff).sum(axis=2).min(axis=1)


def head_logits(embeddings: np.ndarray, head: dict, columns: np.ndarray | None = None) -> np.ndarray:
    """The head's scores ``embedding @ kernel + bias`` (only ``columns`` if given)."""
    kernel, bias = head["kernel"], head["bias"]
    if columns is not None:
        kernel, bias = kernel[:, columns], bias[columns]
    return embeddings @ kernel + bias


def energy(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))


def max_softmax(probabilities: np.ndarray) -> np.ndarray:
    return -probabilities.max(axis=1)


def score_columns(card: dict) -> np.ndarray | None:
    """Head columns that belong to the model's classes (ImageNet classes of each label, or all)."""
    mapping = card.get("label_mapping")
    return np.array(sorted(i for label in card["labels"] for i in mapping[label])) if mapping else None


def ood_scores(method: str, card: dict, embeddings, probabilities, head=None, stats=None) -> np.ndarray:
    """One OOD score per image for ``method``; ``head`` (kernel, bias) for energy, ``stats`` for Mahalanobis."""
    if method == "mahalanobis":
        return mahalanobis(embeddings, stats["means"], stats["precision"])
    if method == "energy":
        return energy(head_logits(embeddings, head, score_columns(card)))
    if method == "max_softmax":
        return max_softmax(probabilities)
    raise ValueError(f"unknown OOD score {method!r}; choose one of {OOD_SCORES}")


# --- unusual regions ---------------------------------------------------------------------------------
def resample(feature_map: np.ndarray, grid: int) -> np.ndarray:
    """(N, C, H, W) → (N, C, grid, grid): average pooling when larger, nearest repeat when smaller."""
    size = feature_map.shape[-1]
    if size > grid:
        factor = size // grid
        n, c = feature_map.shape[:2]
        return feature_map.reshape(n, c, grid, factor, grid, factor).mean(axis=(3, 5))
    factor = grid // size
    return feature_map.repeat(factor, axis=2).repeat(factor, axis=3)


def patch_vectors(feature_maps: list[np.ndarray], grid: int) -> np.ndarray:
    """Concatenate NCHW feature maps on one ``grid``² → (N, grid*grid, D) patch vectors."""
    stacked = np.concatenate([resample(np.asarray(f, dtype=np.float32), grid) for f in feature_maps], axis=1)
    n, d = stacked.shape[:2]
    return stacked.reshape(n, d, grid * grid).transpose(0, 2, 1)


def patch_distances(vectors: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each patch (N, P, D) to its position's mean (P, D) → (N, P)."""
    diff = vectors - means[None]
    return np.sqrt(np.maximum(((diff @ precision) * diff).sum(axis=2), 0.0))


def smooth(grid_map: np.ndarray) -> np.ndarray:
    """3×3 binomial blur of a 2-D map (edges replicated): neighbouring patches overlap in the image."""
    padded = np.pad(grid_map, 1, mode="edge")
    kernel = np.array([0.25, 0.5, 0.25], dtype=np.float32)
    rows = sum(k * padded[i:i + grid_map.shape[0], :] for i, k in enumerate(kernel))
    return sum(k * rows[:, i:i + grid_map.shape[1]] for i, k in enumerate(kernel))


def upsample(grid_map: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D float map to ``size``×``size``."""
    image = Image.fromarray(np.asarray(grid_map, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def region_distances(feature_maps: list[np.ndarray], stats: dict) -> np.ndarray:
    """Patch distance maps (N, grid, grid) of a batch under the stored patch statistics."""
    grid = int(stats["grid"])
    distances = patch_distances(patch_vectors(feature_maps, grid), stats["means"], stats["precision"])
    return distances.reshape(-1, grid, grid)


def region_scores(distances: np.ndarray, top_fraction: float) -> np.ndarray:
    """Image-level score of (N, grid, grid) distance maps: the mean of the largest ``top_fraction``."""
    flat = distances.reshape(len(distances), -1)
    count = max(1, int(round(flat.shape[1] * top_fraction)))
    return np.sort(flat, axis=1)[:, -count:].mean(axis=1)
