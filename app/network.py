"""Inside the network: the graph description written at calibration and feature-map tiles of an image.

``network.json`` (file key ``network``) is derived from the exported ONNX graph by
``export/onnx_graph.py``; the tiles come from ``features.onnx`` (file key ``features``), the same model
with the last block of each resolution as extra outputs, run with ONNX Runtime.
"""
from __future__ import annotations

import json

import numpy as np

from app import map_images
from models import decision
from models.registry import Registry


def description(registry: Registry, name: str, version: str) -> dict:
    return json.loads(registry.file(name, version, "network").read_text())


def tiles(feature_map: np.ndarray, count: int) -> list[dict]:
    """The ``count`` most active channels of one (C, H, W) map as PNG tiles (:mod:`models.decision`)."""
    return [{"channel": channel, "mean": round(mean, 4),
             "png": map_images.data_url(decision.colorize(decision.tile(feature_map[channel])))}
            for channel, mean in decision.select_tiles(feature_map, count)]


def feature_maps(layers: list[dict], outputs: dict[str, np.ndarray], index: int, count: int) -> list[dict]:
    """Per feature layer of the card: its shape, stride, receptive field and tiles for image ``index``."""
    return [{"block": layer["block"], "shape": [layer["channels"], layer["height"], layer["width"]],
             "stride": layer["stride"], "receptive_field": layer["receptive_field"],
             "tiles": tiles(outputs[layer["output"]][index], count)} for layer in layers]
