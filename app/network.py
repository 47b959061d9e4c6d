"""Inside the network: the graph description written at calibration and feature-map tiles of an image.

``network.json`` (file key ``network``) is derived from the exported ONNX graph by
``export/onnx_graph.py``; the tiles come from ``features.onnx`` (file key ``features``), the same model
with the last block of each resolution as extra outputs, run with ONNX Runtime.
"""
from __future__ import annotations

import json

import numpy as np

from app import heatmap_png
from models.registry import Registry

TILE_MIN_SIDE = 56  # small maps are enlarged (nearest neighbour) so each cell stays visible


def description(registry: Registry, name: str, version: str) -> dict:
    return json.loads(registry.file(name, version, "network").read_text())


def tiles(feature_map: np.ndarray, count: int) -> list[dict]:
    """The ``count`` most active channels of one (C, H, W) map as PNG tiles, each scaled to its maximum."""
    means = feature_map.mean(axis=(1, 2))
    repeat = max(1, -(-TILE_MIN_SIDE // feature_map.shape[-1]))
    out = []
    for channel in np.argsort(means)[::-1][:count]:
        unit = heatmap_png.normalise(feature_map[channel]).repeat(repeat, axis=0).repeat(repeat, axis=1)
        out.append({"channel": int(channel), "mean": round(float(means[channel]), 4),
                    "png": heatmap_png.data_url(heatmap_png.colorize(unit))})
    return out


def feature_maps(layers: list[dict], outputs: dict[str, np.ndarray], index: int, count: int) -> list[dict]:
    """Per feature layer of the card: its shape, stride, receptive field and tiles for image ``index``."""
    return [{"block": layer["block"], "shape": [layer["channels"], layer["height"], layer["width"]],
             "stride": layer["stride"], "receptive_field": layer["receptive_field"],
             "tiles": tiles(outputs[layer["output"]][index], count)} for layer in layers]
