"""Inference with ONNX Runtime: one session per model and process, created lazily, swapped atomically.

Each request asks the :class:`ModelCache` for a model by name; the cache compares the registry's current
pointer with the loaded version and, if it changed (promotion or rollback), builds the new session under
a lock before swapping the reference. A request that already holds the old :class:`LoadedModel` finishes
with it, so no request ever sees a half-loaded model and no restart is needed.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Flask, current_app
from PIL import Image

from models import anomaly, atomic, decision
from models.card import served_format
from models.preprocess import preprocess_batch
from models.registry import DEFAULT_ROOT, Registry


@dataclass
class LoadedModel:
    name: str
    version: str
    card: dict
    session: ort.InferenceSession
    tag_labels: list[str] | None
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # npz files by key: head, ood
    stamp: int = 0  # card.json's mtime: calibration rewrites the card, which reloads the model
    fmt: str = "onnx"  # the card's files key that was loaded: "onnx" (fp32) or "onnx_int8"
    serving: dict = field(default_factory=dict)  # models.card.served_format: the file served and why

    @classmethod
    def load(cls, registry: Registry, name: str, version: str, threads: int = 0,
             precision: str = "auto", cache_dir: Path | None = None) -> "LoadedModel":
        """Load a version at ``precision`` (:func:`models.card.served_format`: fp32, int8 or auto); sessions
        as :func:`open_session` makes them."""
        stamp = card_stamp(registry, name, version)
        card = registry.card(name, version)
        serving = served_format(card, precision)
        fmt = serving["format"]
        session = open_session(registry, name, version, fmt, threads, cache_dir)
        tags = card.get("tags")
        tag_labels = None
        if tags:
            tag_labels = json.loads((registry.path(name, version) / tags["labels_file"]).read_text())
        arrays = {key: dict(np.load(registry.file(name, version, key)))
                  for key in ("head", "ood") if key in card["files"]}
        return cls(name, version, card, session, tag_labels, arrays, stamp, fmt, serving)

    def run(self, batch: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Raw ONNX outputs by name for a preprocessed NHWC batch: ``names``, or all of them."""
        names = names or [output.name for output in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {"image": batch})))

    @property
    def answer_outputs(self) -> list[str]:
        """The outputs :meth:`results` reads: the probabilities, the tag scores and, for a calibrated
        out-of-distribution rule, the embedding (never the feature map)."""
        names = [self.card["outputs"]["probabilities"]]
        if self.tag_labels is not None:
            names.append(self.card["tags"]["output"])
        if self.card["unknown_policy"].get("ood"):
            names.append(self.card["outputs"]["embedding"])
        return list(dict.fromkeys(names))

    def predict(self, images: list[Image.Image]) -> tuple[list[dict], dict]:
        """Label, probabilities, unknown flag and tags for each RGB image; plus timings in ms."""
        started = time.perf_counter()
        batch = preprocess_batch(images, self.card["input"])
        preprocessed = time.perf_counter()
        outputs = self.run(batch, self.answer_outputs)
        done = time.perf_counter()
        timings = {"preprocess_ms": (preprocessed - started) * 1e3, "inference_ms": (done - preprocessed) * 1e3}
        return self.results(outputs), timings

    def ood_scores(self, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
        """The card's calibrated out-of-distribution score of each image (None if not calibrated)."""
        rule = self.card["unknown_policy"].get("ood")
        if rule is None:
            return None
        names = self.card["outputs"]
        return anomaly.ood_scores(rule["score"], self.card, outputs[names["embedding"]],
                                  outputs[names["probabilities"]], self.arrays.get("head"), self.arrays.get("ood"))

    def results(self, outputs: dict[str, np.ndarray]) -> list[dict]:
        """Label, probabilities, unknown flag and tags for each image of a batch, from its ONNX outputs."""
        probabilities = outputs[self.card["outputs"]["probabilities"]]
        ood = self.ood_scores(outputs)
        results = []
        for index, row in enumerate(probabilities):
            label, unknown = decision.decide(self.card, row, None if ood is None else float(ood[index]))
            result = {
                "label": label,
                "unknown": unknown,
                "confidence": float(row.max()),
                "probabilities": {name: float(p) for name, p in zip(self.card["labels"], row)},
            }
            if self.tag_labels is not None:
                result["tags"] = self.top_tags(outputs[self.card["tags"]["output"]][index])
            results.append(result)
        return results

    def top_tags(self, scores: np.ndarray) -> list[dict]:
        return decision.top_k_tags(self.card, scores, self.tag_labels)


def open_session(registry: Registry, name: str, version: str, key: str, threads: int = 0,
                 cache_dir: Path | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU for the card's file ``key`` with ``threads`` intra-op threads (0: ORT
    decides) that sleep rather than spin between runs (``benchmarks/bench_session.py``: spinning threads made
    two-thread runs 2.5× slower when other processes shared the cores). With ``cache_dir``, the graph is
    optimised once (``ORT_ENABLE_EXTENDED``: fusions, QDQ to quantised kernels; nothing specific to this CPU)
    into ``<cache_dir>/<sha256>-ort<version>.onnx``, which later sessions load, so a worker or a promoted
    version starts faster; the layout changes specific to this CPU are still applied at load time."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads never steal the cores
    source = registry.file(name, version, key)
    if cache_dir is not None:
        try:
            source = optimised_file(source, registry.card(name, version)["files"][key]["sha256"], cache_dir)
        except OSError:  # a full or read-only disk: serve the file as it is
            pass
    return ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def optimised_file(source: Path, sha256: str, cache_dir: Path) -> Path:
    """The graph of ``source`` optimised by ONNX Runtime, written once (atomically) into ``cache_dir``."""
    optimised = cache_dir / f"{sha256}-ort{ort.__version__}.onnx"
    if not optimised.is_file():
        with atomic.replacing(optimised) as temp:
            once = ort.SessionOptions()
            once.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            once.optimized_model_filepath = str(temp)
            ort.InferenceSession(str(source), once, providers=["CPUExecutionProvider"])
    return optimised


def card_stamp(registry: Registry, name: str, version: str) -> int:
    return (registry.path(name, version) / "card.json").stat().st_mtime_ns


class ModelCache:
    """The models this process serves, keyed by name, always at the registry's current version."""

    def __init__(self, registry: Registry, threads: int = 0, precision: dict[str, str] | None = None,
                 default_precision: str = "auto", cache_dir: Path | None = None):
        self.registry = registry
        self.threads, self.cache_dir = threads, cache_dir
        self.precision, self.default_precision = precision or {}, default_precision
        for value in [default_precision, *self.precision.values()]:
            served_format({"files": {}}, value)  # raises for an unknown precision
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> LoadedModel:
        version = self.registry.resolve(name)
        stamp = card_stamp(self.registry, name, version)
        loaded = self._loaded.get(name)
        if loaded is not None and (loaded.version, loaded.stamp) == (version, stamp):
            return loaded
        with self._lock:
            loaded = self._loaded.get(name)
            if loaded is None or (loaded.version, loaded.stamp) != (version, stamp):
                loaded = LoadedModel.load(self.registry, name, version, self.threads,
                                          self.precision.get(name, self.default_precision), self.cache_dir)
                self._loaded[name] = loaded
            return loaded


def init_app(app: Flask) -> None:
    registry = Registry(app.config["MODELS_DIR"] or DEFAULT_ROOT)
    app.extensions["riim.models"] = ModelCache(registry, threads=app.config["ORT_THREADS"],
                                               precision=app.config["MODEL_PRECISION"],
                                               default_precision=app.config["DEFAULT_PRECISION"],
                                               cache_dir=Path(app.instance_path) / "ort-cache")


def model_cache() -> ModelCache:
    return current_app.extensions["riim.models"]
