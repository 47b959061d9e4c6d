"""Class activation maps (CAM) in numpy from the ONNX outputs and the version's head weights.

For a head that is global average pooling followed by a Dense layer, the score of class ``c`` is the
spatial mean of ``feature_map @ kernel[:, c]`` plus a bias, so that map — the CAM — is an exact spatial
decomposition of the score (Zhou et al., 2016); Grad-CAM on the same layer gives the same map, because the
gradient of the score with respect to every position is ``kernel[:, c] / (H·W)``.

Which column(s):

- a fine-tuned model: ``head.npz`` is its own Dense layer, one column per label;
- a model whose labels are sums of ImageNet classes (``label_mapping``, the default "animals"):
  ``head.npz`` is the ImageNet ``logits`` layer and the map of a label is the probability-weighted mean of
  the CAMs of its ImageNet classes (weights = those classes' softmax probabilities for this image, so the
  map follows the breeds the network actually sees). Any single ImageNet class can be asked for by index.
"""
from __future__ import annotations

import numpy as np

from app import map_images
from models.anomaly import upsample
from models.decision import normalise_map


def target_columns(card: dict, target: str | int, imagenet: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Head columns and their weights for ``target`` (a label, or an ImageNet index as ``int``)."""
    mapping = card.get("label_mapping")
    if isinstance(target, int):
        return np.array([target]), np.ones(1, dtype=np.float32)
    if mapping:
        columns = np.array(mapping[target])
        weights = imagenet[columns].astype(np.float32)
        total = float(weights.sum())
        return columns, (weights / total if total > 0 else np.full(len(columns), 1 / len(columns), np.float32))
    return np.array([card["labels"].index(target)]), np.ones(1, dtype=np.float32)


def class_activation_map(feature_map: np.ndarray, kernel: np.ndarray, columns, weights) -> np.ndarray:
    """(H, W) map of one image: ``feature_map`` (H, W, D) times the weighted head columns (no ReLU)."""
    return feature_map @ (kernel[:, columns] @ weights)


def explain(card: dict, head: dict, feature_map: np.ndarray, imagenet: np.ndarray | None, target,
            pixels: np.ndarray, overlay_format: str) -> dict:
    """CAM of ``target`` for one image: raw grid, heatmap and overlay PNGs on the ``pixels`` the model saw."""
    columns, weights = target_columns(card, target, imagenet)
    unit = normalise_map(class_activation_map(feature_map, head["kernel"], columns, weights))
    return {
        "class": target if isinstance(target, str) else {"imagenet_index": target},
        "method": "cam",
        "grid": np.round(unit, 3).tolist(),
        **map_images.heatmap_and_overlay(unit, pixels, upsample, overlay_format),
    }
