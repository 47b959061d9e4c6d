"""Full analysis of images: prediction + explanation (CAM, pixel tags) + anomalies, in one network run.

When the version was calibrated, the run uses ``features.onnx`` (the model plus intermediate outputs), so
the prediction, the class activation map and the unusual-region map all come from a single inference.
An :class:`Analyzer` per loaded version holds that session and the stored patch statistics.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from flask import current_app
from PIL import Image

from app import explain, map_images, network, pixel_tags, quality
from app.i18n import translate
from app.inference import LoadedModel, model_cache, open_session
from models import anomaly
from models.preprocess import normalize, to_model_pixels

_LOCK = threading.Lock()


class Analyzer:
    def __init__(self, model: LoadedModel, threads: int = 0):
        registry, name, version = model_cache().registry, model.name, model.version
        files = model.card["files"]
        self.model = model
        self.session = model.session
        self.patches = None
        if "features" in files:
            self.session = open_session(registry, name, version, "features", threads, model_cache().cache_dir)
        if "patches" in files and "anomaly" in model.card:
            self.patches = dict(np.load(registry.file(name, version, "patches")))
        self.names = [output.name for output in self.session.get_outputs()]

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        batch = normalize(pixels, self.model.card["input"])
        return dict(zip(self.names, self.session.run(None, {"image": batch})))

    def analyze(self, images: list[Image.Image], explain_it: bool, anomalies: bool, target,
                overlay_format: str) -> tuple[list, dict]:
        """Results as :meth:`LoadedModel.predict` gives them, plus ``explanation``/``pixel_tags`` and/or
        ``anomalies`` per image (overlays as ``overlay_format``); timings in ms."""
        card = self.model.card
        started = time.perf_counter()
        pixels = np.stack([to_model_pixels(image, card["input"]) for image in images])
        preprocessed = time.perf_counter()
        outputs = self.run(pixels)
        done = time.perf_counter()
        results = self.model.results(outputs)
        ood = self.model.ood_scores(outputs) if anomalies else None
        regions = self.region_distances(outputs) if anomalies else None
        for index, (image, result) in enumerate(zip(images, results)):
            measures = quality.measure(image)
            if explain_it:
                result["explanation"] = self.explanation(outputs, index, pixels[index], result, target,
                                                         overlay_format)
                result["pixel_tags"] = named_tags(pixel_tags.tags(image, measures))
            if anomalies:
                result["anomalies"] = {
                    "out_of_distribution": self.ood_entry(None if ood is None else float(ood[index])),
                    "unusual_regions": self.region_entry(None if regions is None else regions[index], pixels[index],
                                                         overlay_format),
                    "quality": quality_entry(measures, card["input"]["size"] // 2),
                }
        timings = {"preprocess_ms": (preprocessed - started) * 1e3, "inference_ms": (done - preprocessed) * 1e3,
                   "analysis_ms": (time.perf_counter() - done) * 1e3}
        return results, timings

    def explanation(self, outputs, index: int, pixels: np.ndarray, result: dict, target, overlay_format) -> dict:
        card = self.model.card
        head = self.model.arrays.get("head")
        if head is None:
            return unavailable("analysis.no_head")
        if target is None:  # the predicted label; for "unknown", the most probable label
            target = max(result["probabilities"], key=result["probabilities"].get)
        imagenet_name = card["outputs"].get("imagenet_probabilities")
        imagenet = outputs[imagenet_name][index] if imagenet_name else None
        return explain.explain(card, head, outputs[card["outputs"]["feature_map"]][index], imagenet, target, pixels,
                               overlay_format)

    def ood_entry(self, score: float | None) -> dict:
        rule = self.model.card["unknown_policy"].get("ood")
        if rule is None or score is None:
            return unavailable("analysis.not_calibrated", model=self.model.name)
        unusual = score > rule["threshold"]
        return {"score": round(score, 4), "threshold": round(rule["threshold"], 4), "method": rule["score"],
                "anomalous": unusual, "reason": translate(f"analysis.ood_{'yes' if unusual else 'no'}",
                                                           method=rule["score"])}

    def region_distances(self, outputs) -> np.ndarray | None:
        if self.patches is None:
            return None
        layers = self.model.card["anomaly"]["regions"]["layers"]
        return anomaly.region_distances([outputs[f"features/{block}"] for block in layers], self.patches)

    def region_entry(self, distances: np.ndarray | None, pixels: np.ndarray, overlay_format: str) -> dict:
        if distances is None:
            return unavailable("analysis.not_calibrated", model=self.model.name)
        rule = self.model.card["anomaly"]["regions"]
        threshold = rule["threshold"]
        score = float(anomaly.region_scores(distances[None], rule["top_fraction"])[0])
        smoothed = anomaly.smooth(distances)  # stretched to this image's own range: its most unusual places show
        spread = float(smoothed.max() - smoothed.min())
        unit = (smoothed - smoothed.min()) / spread if spread > 0 else np.zeros_like(smoothed)
        unusual = score > threshold
        return {"score": round(score, 4), "threshold": round(threshold, 4), "method": "padim",
                "anomalous": unusual, "reason": translate(f"analysis.regions_{'yes' if unusual else 'no'}"),
                **map_images.heatmap_and_overlay(unit, pixels, anomaly.upsample, overlay_format)}

    def feature_maps(self, image: Image.Image, count: int) -> list[dict]:
        layers = self.model.card.get("network", {}).get("feature_layers")
        outputs = self.run(to_model_pixels(image, self.model.card["input"])[None])
        return network.feature_maps(layers, outputs, 0, count)


def named_tags(tags: dict) -> dict:
    """Pixel tags with their words in the request's language."""
    for colour in tags["colours"]:
        colour["name"] = translate(f"colour.{colour['colour']}")
    for key in ("brightness", "sharpness"):
        tags[key]["name"] = translate(f"level.{tags[key]['level']}")
    return tags


def unavailable(key: str, **values) -> dict:
    return {"available": False, "reason": translate(key, **values)}


def quality_entry(measures: dict, min_side: int) -> dict:
    checks = quality.checks(measures, min_side)
    for check in checks:
        if check["flagged"]:
            check["reason"] = translate(f"quality.{check['check']}")
    return {"anomalous": any(c["flagged"] for c in checks), "flags": [c["check"] for c in checks if c["flagged"]],
            "checks": checks}


def analyzer(model: LoadedModel) -> Analyzer:
    """The :class:`Analyzer` of this loaded version (built once per version and card)."""
    cache = current_app.extensions.setdefault("riim.analyzers", {})
    key = (model.name, model.version, model.stamp)
    found = cache.get(model.name)
    if found is None or found[0] != key:
        with _LOCK:
            found = cache.get(model.name)
            if found is None or found[0] != key:
                found = (key, Analyzer(model, current_app.config["ORT_THREADS"]))
                cache[model.name] = found
    return found[1]
