"""Handwritten digits: the page /digits and ``POST /api/v1/digits/predict``, served with ONNX Runtime.

The two networks of ``riim digits train`` (the source document's MLP and a small CNN) are registry models
with task ``digit-recognition``. A picture goes through :mod:`models.digits_preprocess` (the steps the
browser runs too); a picture it refuses (blank, no digit, several digits) gets no answer but ``refused``
with the reason and a message, never a guess. A 28×28 array (``{"pixels": [[…28 numbers in 0–1…] × 28]}``, white digit on black) skips the
preprocessing: it is the network's input as is.
"""
from __future__ import annotations

import math
import time

import numpy as np
from flask import Blueprint, current_app, jsonify, render_template, request

from app.api import check_pixel_budget, decode, loaded_model, uploaded_images
from app.errors import ApiError
from app.i18n import translate
from app.params import choice
from app.security import csrf, limiter
from models import digits_preprocess

bp = Blueprint("digits", __name__)
MODELS = {"mlp": "digits-mlp", "cnn": "digits-cnn"}  # what `riim digits train` publishes
TOP = 3


@bp.get("/digits")
def page():
    return render_template("digits.html", models=MODELS)


def _pixels(data) -> np.ndarray:
    """The JSON body's 28×28 array, validated: 28 rows of 28 finite numbers in [0, 1]."""
    if not isinstance(data, dict) or "pixels" not in data:
        raise ApiError(400, "digits_missing_input")
    rows = data["pixels"]
    size = digits_preprocess.SIZE
    if not isinstance(rows, list) or len(rows) != size or any(not isinstance(row, list) or len(row) != size
                                                              for row in rows):
        raise ApiError(400, "digits_shape", size=size)
    values = [value for row in rows for value in row]
    if any(isinstance(value, bool) or not isinstance(value, (int, float)) for value in values):
        raise ApiError(400, "digits_not_numbers")
    if any(not math.isfinite(value) or not 0 <= value <= 1 for value in values):
        raise ApiError(400, "digits_range")
    return np.asarray(values, np.float32).reshape(size, size)


def _picture() -> tuple[np.ndarray | None, dict, dict]:
    """The network input of the request (image upload or JSON array; None when the picture is refused),
    the preprocessing info and the timings."""
    timings: dict[str, float] = {}
    if request.mimetype == "application/json":
        return _pixels(request.get_json(silent=True)), {"source": "array"}, timings
    uploads = uploaded_images()
    if len(uploads) != 1:
        raise ApiError(400, "too_many_images", limit=1)
    check_pixel_budget(uploads)
    started = time.perf_counter()
    image = decode(*uploads[0])
    decoded = time.perf_counter()
    result = digits_preprocess.preprocess(np.asarray(image))
    timings.update(decode_ms=(decoded - started) * 1e3, preprocess_ms=(time.perf_counter() - decoded) * 1e3)
    if result.input is None:
        return None, {"source": "image", "refused": {"reason": result.reason,
                                                     "message": translate(f"digits.refused.{result.reason}")}}, timings
    info = {"source": "image", "threshold": result.info["threshold"], "box": result.info["box"],
            "parts": result.info["parts"], "dark_background": result.info["dark_background"]}
    return result.input, info, timings


def answer(kind: str, pixels: np.ndarray) -> dict:
    """One network's answer: digit, the ten probabilities, the top 3 and the inference time."""
    model = loaded_model(MODELS[kind])
    started = time.perf_counter()
    probabilities = model.run(pixels[None])[model.card["outputs"]["probabilities"]][0]
    inference_ms = (time.perf_counter() - started) * 1e3
    order = np.argsort(-probabilities, kind="stable")[:TOP]
    labels = model.card["labels"]
    return {"kind": kind, "name": model.name, "version": model.version, "format": model.fmt,
            "digit": labels[int(order[0])], "probabilities": [round(float(p), 6) for p in probabilities],
            "top": [{"digit": labels[int(i)], "probability": round(float(probabilities[i]), 6)} for i in order],
            "inference_ms": round(inference_ms, 3)}


@bp.post("/api/v1/digits/predict")
@csrf.exempt
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def predict():
    """The digit in a picture (multipart ``image``) or a 28×28 JSON array, by ``?model=mlp|cnn`` or both;
    ``results`` is empty and ``preprocessing.refused`` says why when the picture holds no single digit."""
    started = time.perf_counter()
    wanted = choice("model", ("both", "mlp", "cnn"))
    pixels, info, timings = _picture()
    results = [] if pixels is None else [answer(kind, pixels) for kind in (MODELS if wanted == "both" else [wanted])]
    timings["total_ms"] = (time.perf_counter() - started) * 1e3
    return jsonify(input=None if pixels is None else np.round(pixels, 4).tolist(), preprocessing=info,
                   results=results, timings={key: round(value, 3) for key, value in timings.items()})

