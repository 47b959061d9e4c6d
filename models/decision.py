"""What the browser must compute exactly like the server, specified once; parameters come from the card.

``web/static/js/contract.js`` implements the same functions (the out-of-distribution scores it mirrors
are in :mod:`models.anomaly`); ``tests/test_contract*.py`` prove the two agree on golden vectors.

- the decision: the card's ``unknown_policy`` (probability threshold and calibrated ``ood`` rule);
- tags: the ``tags.top_k`` largest ImageNet probabilities, largest first, ties by lower index;
- map normalisation (CAM, tiles): negatives clipped to 0, divided by the maximum (a flat map stays 0);
- the colour map: 256 colours interpolated between the inferno anchors; a value v in [0, 1] takes
  colour ``floor(float32(v) * 255)``;
- feature-map tiles: the channels with the largest spatial mean (ties by lower index), each normalised
  and enlarged by nearest repetition to at least ``TILE_MIN_SIDE`` pixels.
"""
from __future__ import annotations

import numpy as np

ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)
TILE_MIN_SIDE = 56  # small maps are enlarged so each cell stays visible


def best_index(probabilities) -> int:
    """Index of the largest probability (the first on ties)."""
    return max(range(len(probabilities)), key=lambda i: probabilities[i])


def decide(card: dict, probabilities, ood_score: float | None = None) -> tuple[str, bool]:
    """Apply the card's unknown policy to one probability vector → (label or "unknown", is_unknown).

    With a calibrated ``ood`` rule in the policy, ``ood_score`` (that rule's score for the image) above its
    threshold also means "unknown"."""
    policy = card["unknown_policy"]
    best = best_index(probabilities[:len(card["labels"])])
    if policy["rule"] == "max_probability_below" and float(probabilities[best]) < policy["threshold"]:
        return "unknown", True
    if "ood" in policy and ood_score is not None and ood_score > policy["ood"]["threshold"]:
        return "unknown", True
    return card["labels"][best], False


def top_k(scores, k: int) -> list[int]:
    """Indices of the ``k`` largest scores, largest first; equal scores by lower index."""
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")[:k]]


def top_k_tags(card: dict, scores, names: list[str]) -> list[dict]:
    """The card's ``tags.top_k`` ImageNet tags of one image's ``scores``."""
    return [{"label": names[i], "index": i, "probability": float(scores[i])} for i in top_k(scores, card["tags"]["top_k"])]


def normalise_map(values) -> np.ndarray:
    """Scale to [0, 1] by the maximum after clipping negatives (a flat or negative map stays all zero)."""
    values = np.maximum(np.asarray(values, dtype=np.float32), np.float32(0))
    top = values.max() if values.size else np.float32(0)
    return values / top if top > 0 else values


def _colour_table() -> np.ndarray:
    """256 colours interpolated between :data:`ANCHORS` (rounded half to even)."""
    position = np.linspace(0, len(ANCHORS) - 1, 256)
    low = np.minimum(position.astype(int), len(ANCHORS) - 2)
    weight = (position - low)[:, None]
    return ((1 - weight) * ANCHORS[low] + weight * ANCHORS[low + 1]).round().astype(np.uint8)


COLOURS = _colour_table()


def colour_indices(unit) -> np.ndarray:
    """Values in [0, 1] (clipped) → indices into :data:`COLOURS`."""
    return (np.clip(np.asarray(unit, dtype=np.float32), 0, 1) * np.float32(255)).astype(np.uint8)


def colorize(unit) -> np.ndarray:
    """(H, W) in [0, 1] → (H, W, 3) uint8 colours."""
    return COLOURS[colour_indices(unit)]


def select_tiles(feature_map: np.ndarray, count: int) -> list[tuple[int, float]]:
    """(channel, spatial mean) of the ``count`` most active channels of one (C, H, W) map, most active first."""
    means = np.asarray(feature_map, dtype=np.float32).mean(axis=(1, 2))
    return [(channel, float(means[channel])) for channel in top_k(means, count)]


def tile(channel_map: np.ndarray) -> np.ndarray:
    """One (H, W) channel normalised and enlarged by an integer factor to at least ``TILE_MIN_SIDE``."""
    repeat = max(1, -(-TILE_MIN_SIDE // channel_map.shape[-1]))
    return normalise_map(channel_map).repeat(repeat, axis=0).repeat(repeat, axis=1)
