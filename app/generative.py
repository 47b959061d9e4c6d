"""The autoencoder and the GAN served with ONNX Runtime, and the paradigms results the lesson reads.

- ``POST /api/v1/autoencoder/reconstruct`` — images (multipart ``image``) → each one as the model sees it
  (28×28 grey, :func:`models.generative.to_grey`), its reconstruction, the reconstruction error and the
  verdict "unusual" when the error is above ``threshold`` (the card's unless ``?threshold=`` is given).
- ``POST /api/v1/gan/sample`` — JSON ``{"n", "seed"}`` or ``{"latent": [[…], …]}`` → generated digits.
- ``GET /api/v1/paradigms`` — the results of ``riim paradigms`` (404 until it has run).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from flask import Blueprint, current_app, jsonify, request, send_file

from app import params
from app.api import check_pixel_budget, decode, loaded_model, uploaded_images
from app.errors import ApiError
from app.inference import model_cache
from app.security import csrf, limiter
from models import generative
from models.registry import RegistryError

bp = Blueprint("generative", __name__, url_prefix="/api/v1")
TASKS = {"autoencoder": "image-reconstruction", "gan": "image-generation"}
DEFAULT_NAMES = {"autoencoder": "fashion-autoencoder", "gan": "digits-gan"}
RESULTS_FILE = "paradigms.json"  # written by `riim paradigms` into the instance folder
MAX_SEED = 2**32 - 1


def served(kind: str):
    """The model answering for ``kind``: ``?model=`` (it must have that task), else the default name."""
    name = params.text("model") or DEFAULT_NAMES[kind]
    registry = model_cache().registry
    try:
        task = registry.task(name)
    except RegistryError:
        task = None
    if task != TASKS[kind]:
        raise ApiError(404, "unknown_model", model=name[:80])
    return loaded_model(name)


def threshold_param(default: float) -> tuple[float, str]:
    """``?threshold=`` as a finite number ≥ 0, else the card's (``default``); with where it came from."""
    raw = params.text("threshold")
    if raw is None:
        return default, "card"
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, "bad_param", name="threshold", value=raw[:80])
    return value, "query"


@bp.post("/autoencoder/reconstruct")
@csrf.exempt  # public JSON API like /predict: no session, nothing stored
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def reconstruct():
    model = served("autoencoder")
    card = model.card
    threshold, source = threshold_param(card["anomaly"]["threshold"])
    uploads = uploaded_images()
    check_pixel_budget(uploads)
    started = time.perf_counter()
    grey = np.stack([generative.to_grey(decode(filename, data), card["input"]["size"]) for filename, data in uploads])
    batch = grey[..., None]
    outputs = dict(zip([o.name for o in model.session.get_outputs()],
                       model.session.run(None, {card["input"]["name"]: batch})))
    reconstructions = outputs[card["outputs"]["reconstruction"]]
    errors = generative.reconstruction_errors(batch, reconstructions)
    results = [{"filename": filename, "error": round(float(error), 6), "unusual": bool(error > threshold),
                "input": generative.png_data_uri(image), "reconstruction": generative.png_data_uri(rebuilt[..., 0])}
               for (filename, _), image, rebuilt, error in zip(uploads, grey, reconstructions, errors)]
    return jsonify(model={"name": model.name, "version": model.version},
                   threshold=threshold, threshold_source=source, results=results,
                   timings={"total_ms": round((time.perf_counter() - started) * 1e3, 2)})


def latent_body(dim: int) -> tuple[np.ndarray, int | None]:
    """The latent vectors a /gan/sample body asks for: ``latent`` (a list of ``dim`` numbers, or a list of
    such lists), else ``n`` vectors drawn from ``seed``. Anything else is a 400."""
    body = request.get_json(silent=True) if request.data else {}
    if not isinstance(body, dict):
        raise ApiError(400, "bad_param", name="body", value="a JSON object")
    unknown = sorted(set(body) - {"n", "seed", "latent"})
    if unknown:
        raise ApiError(400, "unknown_param", name=str(unknown[0])[:80])
    if "latent" in body:
        z = body["latent"]
        rows = z if isinstance(z, list) and z and all(isinstance(row, list) for row in z) else [z]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in rows
                      if isinstance(row, list) for v in row)
        if (not isinstance(z, list) or not numbers or len(rows) > generative.MAX_SAMPLES
                or any(not isinstance(row, list) or len(row) != dim for row in rows)):
            raise ApiError(400, "bad_latent", dim=dim, limit=generative.MAX_SAMPLES, bound=generative.LATENT_LIMIT)
        array = np.asarray(rows, dtype=np.float64)
        if not np.isfinite(array).all() or np.abs(array).max() > generative.LATENT_LIMIT:
            raise ApiError(400, "bad_latent", dim=dim, limit=generative.MAX_SAMPLES, bound=generative.LATENT_LIMIT)
        return array.astype(np.float32), None
    n = params.json_int("n", body.get("n", 8), 1, generative.MAX_SAMPLES)
    seed = params.json_int("seed", body.get("seed", 0), 0, MAX_SEED)
    return generative.latents(n, dim, seed), seed


@bp.post("/gan/sample")
@csrf.exempt  # public JSON API: no session, nothing stored
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def gan_sample():
    model = served("gan")
    card = model.card
    z, seed = latent_body(card["latent"]["dim"])
    started = time.perf_counter()
    images = model.session.run(None, {card["latent"]["name"]: z})[0][..., 0]
    return jsonify(model={"name": model.name, "version": model.version}, n=len(z), seed=seed,
                   latent_dim=card["latent"]["dim"], latent=np.round(z, 4).tolist(),
                   images=[generative.png_data_uri(image) for image in images],
                   timings={"inference_ms": round((time.perf_counter() - started) * 1e3, 2)})


@bp.get("/paradigms")
def paradigms():
    """The results JSON of `riim paradigms` (supervised vs unsupervised vs reinforcement)."""
    path = Path(current_app.instance_path) / RESULTS_FILE
    if not path.is_file():
        raise ApiError(404, "paradigms_not_computed")
    return send_file(path, mimetype="application/json", max_age=0)
