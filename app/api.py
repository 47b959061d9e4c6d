"""JSON API, version 1: health, model information and prediction."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from flask import Blueprint, current_app, jsonify, request, send_file

from app import analysis, device, job_kinds, map_images, network, params, storage
from app.auth import admin_required, current_user
from app.db import Prediction, db
from app.errors import ApiError
from app.i18n import translate
from app.inference import model_cache
from app.security import csrf, limiter
from app.tokens import may_store_uploads
from models import atomic
from models.card import IMAGE_TASK, served_format
from models.preprocess import ImageDecodeError, ImageTooLargeError, decode_rgb, draft_side_for, open_image, preprocess
from models.registry import CorruptModelError, RegistryError, sha256_file

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PACKAGES = ("flask", "onnxruntime", "numpy", "pillow", "sqlalchemy")
OPENAPI = Path(__file__).with_name("openapi.json")


@bp.get("/health")
def health():
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    """Ready when the default model's ONNX session is loaded in this process (loads it if needed)."""
    name = current_app.config["DEFAULT_MODEL"]
    try:
        model = model_cache().get(name)
    except RegistryError as error:
        raise ApiError(503, "model_unavailable", model=name, reason=str(error)) from None
    return jsonify(status="ready", model={"name": model.name, "version": model.version})


def card_summary(card: dict) -> dict:
    """The parts of a card a client needs to understand a version (the full card is in the registry)."""
    keys = ("version", "created", "description", "labels", "unknown_policy", "backbone", "input", "outputs",
            "tags", "parity")
    summary = {key: card[key] for key in keys if key in card}
    summary["files"] = {fmt: {"bytes": entry["bytes"], "sha256": entry["sha256"]}
                        for fmt, entry in card["files"].items()}
    return summary


# --- which model answers: ?model=, else the class default the teacher chose, else DEFAULT_MODEL ----------

CLASS_MODEL_FILE = "class_model.json"  # in the instance folder: {"model", "user", "updated"}


def servable(name) -> bool:
    """Whether ``name`` is an image classifier of the registry with a promoted (current) version."""
    registry = model_cache().registry
    return isinstance(name, str) and name in registry.models(IMAGE_TASK) and registry.current(name) is not None


def class_model() -> str:
    """The model the teacher set for the class (when it still has a promoted version), else DEFAULT_MODEL."""
    record = atomic.read_json(Path(current_app.instance_path) / CLASS_MODEL_FILE)
    stored = record.get("model") if isinstance(record, dict) else None
    return stored if servable(stored) else current_app.config["DEFAULT_MODEL"]


def requested_model() -> str:
    """``model`` (query or form field): a model with a promoted version; absent, the class default."""
    name = request.args.get("model", request.form.get("model"))
    if name is None or name == "":
        return class_model()
    if not servable(name):
        raise ApiError(404, "unknown_model", model=name[:80])
    return name


def calibrated(card: dict) -> bool:
    """Whether the version can say "unknown" for out-of-distribution images (`riim calibrate` ran)."""
    return "ood" in card["unknown_policy"]


@bp.get("/class-model")
def get_class_model():
    """The model pages use when the browser has not chosen one (set by the teacher)."""
    return jsonify(model=class_model(), default_model=current_app.config["DEFAULT_MODEL"])


@bp.put("/class-model")
@admin_required
def set_class_model():
    """``{"model": name}``: the class default (admin); it must have a promoted version."""
    data = request.get_json(silent=True)
    name = data.get("model") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise ApiError(400, "missing_field", field="model")
    if not servable(name):
        raise ApiError(404, "unknown_model", model=name[:80])
    atomic.write_json(Path(current_app.instance_path) / CLASS_MODEL_FILE, {
        "model": name, "user": current_user().username, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return jsonify(model=class_model(), default_model=current_app.config["DEFAULT_MODEL"])


@bp.get("/model-info")
def model_info():
    registry = model_cache().registry
    models = []
    for name in registry.models(IMAGE_TASK):
        current = registry.current(name)
        card = registry.card(name, current) if current else None
        precision = model_cache().precision.get(name, model_cache().default_precision)
        models.append({"name": name, "current": current, "versions": registry.versions(name),
                       "serving": served_format(card, precision) if card else None,
                       "calibrated": calibrated(card) if card else None,
                       "card": card_summary(card) if card else None})
    return jsonify(
        default_model=current_app.config["DEFAULT_MODEL"],
        class_model=class_model(),
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
    for index, part in enumerate(files):
        filename = storage.sanitize_filename(part.filename) or f"image-{index + 1}"
        data = part.read()
        if not data:
            raise ApiError(400, "empty_file", filename=filename)
        uploads.append((filename, data))
    return uploads


def flag(name: str, default: bool) -> bool:
    """A boolean query or form parameter: 1/0, true/false, yes/no."""
    return params.flag(name, default, form=True)


def choice(name: str, allowed: tuple[str, ...]) -> str:
    """A query or form parameter that must be one of ``allowed`` (the first when absent)."""
    return params.choice(name, allowed, form=True)


def decode(filename: str, data: bytes, header_only: bool = False, draft_side: int | None = None):
    """The RGB image in ``data`` (with ``header_only``: its checked header, no pixel decoded; with
    ``draft_side``: a JPEG decoded smaller, see :func:`models.preprocess.decode_rgb`), or the documented 4xx
    (413 when it has too many pixels)."""
    config = current_app.config
    try:
        image = open_image(data, max_pixels=config["IMAGE_MAX_PIXELS"], min_side=config["IMAGE_MIN_SIDE"])
        return image if header_only else decode_rgb(image, draft_side)
    except ImageDecodeError as error:
        status = 413 if isinstance(error, ImageTooLargeError) else 400
        raise ApiError(status, error.code, filename=filename, **error.values) from None


def check_pixel_budget(uploads: list[tuple[str, bytes]]) -> None:
    """Every image's header is checked, and their pixels summed, before any is decoded: 413 past
    ``REQUEST_MAX_PIXELS``, which bounds the CPU one request may cost."""
    pixels = 0
    for filename, data in uploads:
        width, height = decode(filename, data, header_only=True).size
        pixels += width * height
    budget = current_app.config["REQUEST_MAX_PIXELS"]
    if pixels > budget:
        raise ApiError(413, "too_many_pixels", pixels_mp=round(pixels / 1e6, 1), max_mp=round(budget / 1e6, 1))


def classified(model, uploads: list[tuple[str, bytes]]) -> tuple[list[dict], dict, list[tuple]]:
    """Each image decoded, preprocessed and released in turn, then one batched run: the results, the
    timings in ms and the (format, size) of each image that storing needs."""
    spec = model.card["input"]
    batch = np.empty((len(uploads), spec["size"], spec["size"], 3), np.float32)
    kept, timings = [], {"decode_ms": 0.0, "preprocess_ms": 0.0}
    for row, (filename, data) in enumerate(uploads):
        started = time.perf_counter()
        image = decode(filename, data, draft_side=draft_side_for(spec))
        decoded = time.perf_counter()
        preprocess(image, spec, out=batch[row])
        kept.append((image.info["format"], image.info["size"]))
        del image  # before the next one is decoded
        timings["decode_ms"] += (decoded - started) * 1e3
        timings["preprocess_ms"] += (time.perf_counter() - decoded) * 1e3
    started = time.perf_counter()
    results = model.results(model.run(batch, model.answer_outputs))
    timings["inference_ms"] = (time.perf_counter() - started) * 1e3
    return results, timings, kept


def analysed(model, uploads: list[tuple[str, bytes]], explain_it: bool, anomalies: bool, target,
             overlay_format: str) -> tuple[list[dict], dict, list[tuple]]:
    """As :func:`classified`, with the analysis asked for, which reads the full image: each image is
    decoded, analysed and released in turn."""
    results, kept, timings = [], [], {"decode_ms": 0.0}
    for filename, data in uploads:
        started = time.perf_counter()
        image = decode(filename, data)
        timings["decode_ms"] += (time.perf_counter() - started) * 1e3
        (result,), image_timings = analysis.analyzer(model).analyze([image], explain_it, anomalies, target,
                                                                    overlay_format)
        results.append(result)
        kept.append((image.info["format"], image.info["size"]))
        del image  # before the next one is decoded
        for key, value in image_timings.items():
            timings[key] = timings.get(key, 0.0) + value
    return results, timings, kept


# CSRF-exempt on purpose: the public JSON API must work from curl and scripts without a session
# (`curl -F image=@cat.png …/api/v1/predict`). It needs no login, changes no admin state (it only adds
# the caller's own image and answer) and is rate-limited per client; admin calls stay CSRF-protected.
@bp.post("/predict")
@csrf.exempt
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def predict():
    """Classify one or several images (multipart field ``image``, repeatable) with the current version of
    ``model`` (default: the class model). Each image is stored for the labelling loop unless ``store=0``.
    ``calibrated`` (model and every result) says whether "unknown" covers out-of-distribution images."""
    started = time.perf_counter()
    name = requested_model()
    wanted, allowed = flag("store", current_app.config["STORE_UPLOADS"]), may_store_uploads()
    keep = wanted and allowed
    explain_it, anomalies = flag("explain", False), flag("anomaly", False)
    overlay_format = choice("overlay", map_images.OVERLAY_FORMATS)
    uploads = uploaded_images()
    check_pixel_budget(uploads)
    model = loaded_model(name)
    if explain_it or anomalies:
        results, timings, kept = analysed(model, uploads, explain_it, anomalies, target_class(model), overlay_format)
    else:
        results, timings, kept = classified(model, uploads)
    for (filename, data), result, (image_format, size) in zip(uploads, results, kept):
        result["filename"] = filename
        result["calibrated"] = calibrated(model.card)
        sha256 = hashlib.sha256(data).hexdigest()
        if keep:
            storage.save(sha256, data, image_format, size, filename)
        db.session.add(Prediction(
            image_sha256=sha256, model_name=model.name, model_version=model.version,
            label=result["label"], confidence=result["confidence"], unknown=result["unknown"],
            probabilities=result["probabilities"], inference_ms=timings["inference_ms"] / len(results)))
    db.session.commit()
    timings["total_ms"] = (time.perf_counter() - started) * 1e3
    return jsonify(model={"name": model.name, "version": model.version, "format": model.fmt,
                          "calibrated": calibrated(model.card)}, results=results,
                   timings={key: round(value, 2) for key, value in timings.items()},
                   stored=keep, **({"notice": translate("predict.not_stored")} if wanted and not allowed else {}))


def target_class(model) -> str | int | None:
    """``class=``: a label of the model, or an ImageNet class index when its labels are ImageNet sums."""
    raw = params.text("class")
    if raw is None:
        return None
    if raw in model.card["labels"]:
        return raw
    head = model.arrays.get("head")
    index = params.as_int(raw, 0, head["kernel"].shape[1] - 1) if head is not None else None
    if model.card.get("label_mapping") and index is not None:
        return index
    raise ApiError(400, "unknown_class", value=raw[:80], labels=", ".join(model.card["labels"]))


def loaded_model(name: str):
    """The served version of ``name`` or the documented 404/503."""
    try:
        return model_cache().get(name)
    except CorruptModelError as error:
        raise ApiError(503, "model_unavailable", model=name, reason=str(error)) from None
    except RegistryError:
        raise ApiError(404, "unknown_model", model=name) from None


def require_calibration(model, key: str) -> None:
    """409 when the version lacks a file that `riim calibrate` writes."""
    if key not in model.card["files"]:
        raise ApiError(409, "not_calibrated", model=model.name)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of this API (``app/openapi.json``), with the job kinds this app registers."""
    description = json.loads(OPENAPI.read_text(encoding="utf-8"))
    body = description["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    retrain, other = body["schema"]["oneOf"]
    other["properties"]["kind"]["enum"] = sorted(job_kinds.KINDS)
    body["schema"] = {"oneOf": [retrain, other]} if job_kinds.KINDS else retrain
    return jsonify(description)


@bp.get("/models/<name>/network")
def network_description(name: str):
    """Blocks, op types, shapes, parameters and receptive fields of the served version's ONNX graph."""
    model = loaded_model(name)
    require_calibration(model, "network")
    return jsonify(model={"name": model.name, "version": model.version},
                   network=network.description(model_cache().registry, model.name, model.version))


@bp.post("/models/<name>/feature-maps")
@csrf.exempt
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def feature_maps(name: str):
    """PNG tiles of the most active channels of a few layers for one uploaded image (``count`` per layer)."""
    count = params.integer("count", 8, 1, 32)
    uploads = uploaded_images()
    if len(uploads) != 1:
        raise ApiError(400, "too_many_images", limit=1)
    image = decode(*uploads[0])
    model = loaded_model(name)
    require_calibration(model, "features")
    return jsonify(model={"name": model.name, "version": model.version},
                   layers=analysis.analyzer(model).feature_maps(image, count))


# --- model versions for the web pages (read-only JSON, immutable files) and admin promote/rollback ------

def _registry_call(function, *args):
    """Run a registry read; an unknown model or version is a 404 JSON error."""
    try:
        return function(*args)
    except RegistryError as error:
        raise ApiError(404, "unknown_version", reason=str(error)) from None


@bp.get("/models/<name>")
def model_versions(name: str):
    """A model's current version, promotion history and every version's full card (newest first)."""
    registry = model_cache().registry
    versions = _registry_call(registry.versions, name)
    pointer = registry.pointer(name)
    return jsonify(name=name, current=pointer["version"], history=pointer["history"],
                   versions=[registry.card(name, version) for version in reversed(versions)])


@bp.get("/models/<name>/versions/<version>")
def version_card(name: str, version: str):
    """The full card of one version (files are immutable, but export and calibration add sections)."""
    return jsonify(_registry_call(model_cache().registry.card, name, version))


def servable_files(card: dict) -> dict[str, str]:
    """Path → sha256 of every file of a version the browser may fetch: the card's files and their parts
    (TF.js weight shards)."""
    entries = [entry for fmt in card["files"].values() for entry in [fmt, *fmt.get("parts", [])]]
    return {entry["path"]: entry["sha256"] for entry in entries}


@bp.get("/models/<name>/versions/<version>/files/<path:path>")
def version_file(name: str, version: str, path: str):
    """A file of a version, only if the card lists it, after checking its sha256. Cached for a year by
    the browser: versions never change."""
    registry = model_cache().registry
    sha256 = servable_files(_registry_call(registry.card, name, version)).get(path)
    if sha256 is None:
        raise ApiError(404, "unknown_file", path=path[:200])
    file_path = registry.path(name, version) / path
    if not verified(file_path, sha256):
        raise ApiError(503, "model_unavailable", model=name, reason=f"{path} does not match its sha256")
    return send_file(file_path, max_age=365 * 24 * 3600, conditional=True)


_VERIFIED: dict[tuple[str, str], tuple[int, int, int]] = {}  # (path, sha256) → (inode, size, mtime) hashed


def verified(path: Path, sha256: str) -> bool:
    """Whether ``path`` has the digest ``sha256``, hashed once per process while the file is unchanged
    (same inode, size and mtime): versions are immutable, so a request (or a 304) costs a ``stat``."""
    try:
        stat = path.stat()
    except OSError:
        return False
    key, seen = (str(path), sha256), (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if _VERIFIED.get(key) != seen:
        if not path.is_file() or sha256_file(path) != sha256:
            return False
        _VERIFIED[key] = seen
    return True


def _requested_version() -> str:
    data = request.get_json(silent=True)
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version:
        raise ApiError(400, "missing_field", field="version")
    return version


@bp.post("/models/<name>/promote")
@admin_required
def promote(name: str):
    """Make ``{"version": "vN"}`` the current version (admin; serving switches without a restart)."""
    registry = model_cache().registry
    _registry_call(registry.promote, name, _requested_version())
    return jsonify(name=name, **registry.pointer(name))


@bp.post("/models/<name>/rollback")
@admin_required
def rollback(name: str):
    """Return to the previously promoted version (admin)."""
    registry = model_cache().registry
    _registry_call(registry.versions, name)
    try:
        registry.rollback(name)
    except RegistryError as error:
        raise ApiError(409, "no_rollback", model=name, reason=str(error)) from None
    return jsonify(name=name, **registry.pointer(name))
