"""JSON API, version 1: health, model information and prediction."""
from __future__ import annotations

import hashlib
import sys
import time
from importlib import metadata

from flask import Blueprint, current_app, jsonify, request

from app import device
from app.db import Prediction, db
from app.errors import ApiError
from app.inference import store
from models.preprocess import ImageDecodeError, load_image
from models.registry import CorruptModelError, RegistryError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PACKAGES = ("flask", "onnxruntime", "numpy", "pillow", "sqlalchemy")


@bp.get("/health")
def health():
    return jsonify(status="ok")


def card_summary(card: dict) -> dict:
    """The parts of a card a client needs to understand a version (the full card is in the registry)."""
    keys = ("version", "created", "description", "labels", "unknown_policy", "backbone", "input", "outputs",
            "tags", "parity")
    summary = {key: card[key] for key in keys if key in card}
    summary["files"] = {fmt: {"bytes": entry["bytes"], "sha256": entry["sha256"]}
                        for fmt, entry in card["files"].items()}
    return summary


@bp.get("/model-info")
def model_info():
    registry = store().registry
    models = []
    for name in registry.models():
        current = registry.current(name)
        models.append({"name": name, "current": current, "versions": registry.versions(name),
                       "card": card_summary(registry.card(name, current)) if current else None})
    return jsonify(
        default_model=current_app.config["DEFAULT_MODEL"],
        models=models,
        device=device.describe(),
        packages={name: metadata.version(name) for name in PACKAGES},
        python=sys.version.split()[0],
        tensorflow_loaded="tensorflow" in sys.modules,
    )


def uploaded_images() -> list[tuple[str, bytes]]:
    """The ``image`` files of a multipart request, validated for presence, count and emptiness."""
    files = request.files.getlist("image")
    if not files:
        raise ApiError(400, "missing_field", field="image")
    limit = current_app.config["MAX_IMAGES_PER_REQUEST"]
    if len(files) > limit:
        raise ApiError(400, "too_many_images", limit=limit)
    uploads = []
    for index, storage in enumerate(files):
        filename = storage.filename or f"image-{index + 1}"
        data = storage.read()
        if not data:
            raise ApiError(400, "empty_file", filename=filename)
        uploads.append((filename, data))
    return uploads


@bp.post("/predict")
def predict():
    """Classify one or several images (multipart field ``image``, repeatable) with the current version."""
    started = time.perf_counter()
    name = request.args.get("model", current_app.config["DEFAULT_MODEL"])
    uploads = uploaded_images()
    images = []
    for filename, data in uploads:
        try:
            images.append(load_image(data))
        except ImageDecodeError as error:
            raise ApiError(400, "not_an_image", filename=filename, reason=str(error)) from None
    decoded = time.perf_counter()
    try:
        model = store().get(name)
    except CorruptModelError as error:
        raise ApiError(503, "model_unavailable", model=name, reason=str(error)) from None
    except RegistryError:
        raise ApiError(404, "unknown_model", model=name) from None
    results, timings = model.predict(images)
    for (filename, data), result in zip(uploads, results):
        result["filename"] = filename
        db.session.add(Prediction(
            image_sha256=hashlib.sha256(data).hexdigest(), model_name=model.name, model_version=model.version,
            label=result["label"], confidence=result["confidence"], unknown=result["unknown"],
            probabilities=result["probabilities"], inference_ms=timings["inference_ms"] / len(results)))
    db.session.commit()
    timings = {"decode_ms": (decoded - started) * 1e3, **timings,
               "total_ms": (time.perf_counter() - started) * 1e3}
    return jsonify(model={"name": model.name, "version": model.version}, results=results,
                   timings={key: round(value, 2) for key, value in timings.items()})
