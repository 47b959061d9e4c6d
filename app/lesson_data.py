"""Data for the lessons' live demos (transfer learning, data augmentation, overfitting, cross-validation).

Every answer comes from this app's real data and the served model (ONNX Runtime), never from the browser's
guesses:

- ``GET /samples`` and ``GET /samples/<name>``: the real photos bundled with installed packages
  (:mod:`models.real_data`), for students without a webcam and for the tests;
- ``POST /embeddings``: the served model's ``embedding`` output (the input of its classification head) for
  uploaded images, preprocessed exactly as :mod:`models.preprocess` says; a new head is trained on them in
  the browser;
- ``GET /augment/recipe`` and ``POST /augment``: an uploaded image through the training recipe
  (:mod:`models.augment_recipe`, the one :mod:`training.augment` builds), with the student's settings;
- ``GET /fashion``: real Fashion-MNIST images (class round-robin, so any prefix is balanced) and their
  embeddings, computed once per model version in chunks (the client asks chunk by chunk to show progress)
  and cached in the instance folder;
- ``GET /curves``: the registry's learning curves (frozen backbone vs fine-tuned stages, card ``metrics``).

Arrays travel as ``{"dtype", "shape", "data": base64 little-endian}``: 1,000 embeddings of 1,280 floats
are 2.5 MB in float16, ten times less than JSON numbers.
"""
from __future__ import annotations

import base64
import functools
import io
import threading
import time
from pathlib import Path

import numpy as np
from flask import Blueprint, current_app, jsonify, send_file, url_for
from PIL import Image

from app import api, params
from app.errors import ApiError
from app.inference import model_cache
from app.security import csrf, limiter
from models import atomic, augment_recipe, real_data
from models.card import IMAGE_TASK
from models.preprocess import normalize, preprocess, to_model_pixels
from models.training_config import AugmentConfig, ConfigError, from_dict

bp = Blueprint("lesson_data", __name__, url_prefix="/api/v1/lessons")
FASHION_SPLITS = {"train": "train", "validation": "test"}  # lesson split → Fashion-MNIST file
FASHION_ROWS = 1000  # images per split the lessons may use (100 per class)
FASHION_CHUNK = 200  # at most this many rows per request
BATCH = 32  # images per ONNX Runtime call
MAX_AUGMENTED = 16
_fashion_lock = threading.Lock()


def encoded(array: np.ndarray) -> dict:
    """A numeric array as base64 little-endian bytes with its dtype and shape."""
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode()}


def png_data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def served_model():
    """The model a lesson demo uses: ``?model=``, else the class model (as /predict chooses)."""
    return api.loaded_model(api.requested_model())


def embeddings_of(model, batch: np.ndarray) -> np.ndarray:
    """The ``embedding`` output for a preprocessed NHWC batch, run :data:`BATCH` images at a time."""
    name = model.card["outputs"]["embedding"]
    return np.concatenate([model.run(batch[i:i + BATCH])[name] for i in range(0, len(batch), BATCH)])


# --- bundled photos --------------------------------------------------------------------------------

def photo_files() -> dict[str, real_data.PhotoFile]:
    try:
        return {photo.name: photo for photo in real_data.photo_files()}
    except real_data.MissingDataError as error:
        raise ApiError(503, "lesson_data_missing", reason=str(error)) from None


@bp.get("/samples")
def samples():
    """The bundled real photos (name, label cat / dog / other, URL)."""
    return jsonify(photos=[{"name": name, "label": photo.label, "url": url_for(".sample", name=name)}
                           for name, photo in photo_files().items()])


@bp.get("/samples/<path:name>")
def sample(name: str):
    photo = photo_files().get(name)
    if photo is None:
        raise ApiError(404, "unknown_sample", name=name[:80])
    return send_file(photo.path, max_age=86400)


# --- transfer learning -----------------------------------------------------------------------------

@bp.post("/embeddings")
@csrf.exempt  # computes and stores nothing, like /predict; rate-limited per client
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def embeddings():
    """The served model's embedding of each uploaded image (multipart ``image``, 1–16), float32."""
    uploads = api.uploaded_images()
    api.check_pixel_budget(uploads)
    model = served_model()
    started = time.perf_counter()
    rows = []
    for filename, data in uploads:
        rows.append(preprocess(api.decode(filename, data), model.card["input"]))
    vectors = embeddings_of(model, np.stack(rows)).astype(np.float32)
    return jsonify(model={"name": model.name, "version": model.version, "output": model.card["outputs"]["embedding"]},
                   embeddings=encoded(vectors), elapsed_ms=round((time.perf_counter() - started) * 1e3, 1))


@bp.get("/curves")
def curves():
    """Every image-classification version whose card holds learning curves: per stage (``head`` = frozen
    backbone, ``finetune`` = last blocks unfrozen) loss / accuracy / val_loss / val_accuracy per epoch."""
    registry = model_cache().registry
    found = []
    for name in registry.models(task=IMAGE_TASK):
        current = registry.current(name)
        for version in registry.versions(name):
            metrics = registry.card(name, version).get("metrics", {})
            if metrics.get("curves"):
                found.append({"name": name, "version": version, "current": version == current,
                              "curves": metrics["curves"], "diagnosis": metrics.get("diagnosis"),
                              "test_accuracy": metrics.get("test", {}).get("accuracy")})
    return jsonify(versions=found)


# --- data augmentation -----------------------------------------------------------------------------

AUGMENT_FIELDS = tuple(name for name in AugmentConfig.__dataclass_fields__ if name not in ("enabled", "copies"))


def augment_settings() -> AugmentConfig:
    """The ``augment`` training settings given as form fields (e.g. ``affine=1``, ``max_rotate=30``), validated
    like a training config (400 ``bad_config`` names the field); absent ones keep the training defaults."""
    values = {}
    for name in AUGMENT_FIELDS:
        raw = params.text(name, form=True)
        if raw is None:
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            raise ApiError(400, "bad_param", name=name, value=raw[:80]) from None
        if not np.isfinite(values[name]):
            raise ApiError(400, "bad_param", name=name, value=raw[:80])
    try:
        return from_dict({"augment": values}).augment
    except ConfigError as error:
        raise ApiError(400, "bad_config", problems="; ".join(error.problems)) from None


def recipe_description(config: AugmentConfig, size: int) -> list[dict]:
    return [{"name": step.name, "transform": step.transform, "probability": step.probability,
             "settings": list(step.settings), "args": step.args} for step in augment_recipe.steps(config, size)]


@bp.get("/augment/recipe")
def augment_recipe_view():
    """The training recipe: its steps and every setting with its default and allowed range."""
    model = served_model()
    size = model.card["input"]["size"]
    ranges = {name: {"default": spec.default, "low": spec.metadata.get("low"), "high": spec.metadata.get("high")}
              for name, spec in AugmentConfig.__dataclass_fields__.items() if name not in ("enabled", "copies")}
    return jsonify(size=size, steps=recipe_description(AugmentConfig(), size), settings=ranges)


@bp.post("/augment")
@csrf.exempt  # computes and stores nothing; rate-limited per client
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def augment():
    """``count`` augmented copies (1–16) of one uploaded ``image`` through the training recipe
    with the given settings and ``seed``: the model-size original and the copies as PNG data URLs, and the
    transforms that fired on each copy."""
    count = params.integer("count", 8, 1, MAX_AUGMENTED, form=True)
    seed = params.integer("seed", 0, 0, 2**31 - 1, form=True)
    config = augment_settings()
    uploads = api.uploaded_images()
    if len(uploads) != 1:
        raise ApiError(400, "too_many_images", limit=1)
    api.check_pixel_budget(uploads)
    name, image = uploads[0][0], api.decode(*uploads[0])
    try:
        import albumentations  # TF-free; part of the training install (a serving-only host may lack it)
    except ImportError:
        raise ApiError(503, "augment_unavailable") from None
    model = served_model()
    started = time.perf_counter()
    size = model.card["input"]["size"]
    pixels = to_model_pixels(image, model.card["input"])
    transform = augment_recipe.build(albumentations, config, size, seed, record=True)
    names = {step.transform: step.name for step in augment_recipe.steps(config, size)}
    copies = [transform(image=pixels) for _ in range(count)]
    return jsonify(image=name, size=size, seed=seed, config=vars(config), steps=recipe_description(config, size),
                   original=png_data_url(pixels), samples=[png_data_url(copy["image"]) for copy in copies],
                   applied=[[names[fired[0]] for fired in copy["applied_transforms"]] for copy in copies],
                   elapsed_ms=round((time.perf_counter() - started) * 1e3, 1))


# --- Fashion-MNIST embeddings (overfitting, cross-validation) ---------------------------------------

def fashion_rows(source: str) -> tuple[np.ndarray, np.ndarray]:
    """The first :data:`FASHION_ROWS` images of a Fashion-MNIST file in class round-robin order (image 0
    of every class, then image 1 of every class…): (images (N, 28, 28) uint8, labels (N,))."""
    try:
        return _fashion_rows(source)
    except real_data.MissingDataError as error:
        raise ApiError(503, "lesson_data_missing", reason=str(error)) from None


@functools.cache  # 0.8 MB per file, read once per process
def _fashion_rows(source: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = real_data.fashion_mnist_arrays(source)
    classes = len(real_data.FASHION_MNIST_CLASSES)
    per_class = [np.flatnonzero(labels == label)[:FASHION_ROWS // classes] for label in range(classes)]
    order = np.stack(per_class, axis=1).reshape(-1)
    return images[order], labels[order]


def cache_path(model, kind: str) -> Path:
    """Where this model version's embeddings of a lesson data set are cached (the instance folder)."""
    folder = Path(current_app.instance_path) / "lessons"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"fashion-{kind}-{model.name}-{model.version}-{model.fmt}.npy"


def save_rows(path: Path, rows: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, rows)
    atomic.write_bytes(path, buffer.getvalue())


def grey_to_rgb(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image, "L").convert("RGB")


def fashion_embeddings(model, split: str, images: np.ndarray, end: int) -> tuple[np.ndarray, bool]:
    """The embeddings of ``images[:end]`` (float16), from the instance cache, computing and caching the
    missing rows first; whether they all came from the cache."""
    path = cache_path(model, split)
    with _fashion_lock:
        cached = np.load(path) if path.is_file() else np.zeros((0, 0), np.float16)
        if len(cached) >= end:
            return cached[:end], True
        spec = model.card["input"]
        batch = np.stack([preprocess(grey_to_rgb(image), spec) for image in images[len(cached):end]])
        computed = embeddings_of(model, batch).astype(np.float16)
        rows = np.concatenate([cached, computed]) if len(cached) else computed
        save_rows(path, rows)
        return rows[:end], False


def augmented_embeddings(model, images: np.ndarray, copies: int) -> tuple[np.ndarray, bool]:
    """(copies, N, D) float16: copy ``c`` of every image through the training recipe with seed ``c``, as
    :func:`training.finetune` makes its augmented copies (one pipeline per copy over the images in order);
    cached per (N, copies)."""
    path = cache_path(model, f"augmented-{len(images)}x{copies}")
    with _fashion_lock:
        if path.is_file():
            return np.load(path), True
        try:
            import albumentations  # TF-free; part of the training install (a serving-only host may lack it)
        except ImportError:
            raise ApiError(503, "augment_unavailable") from None
        spec = model.card["input"]
        pixels = [to_model_pixels(grey_to_rgb(image), spec) for image in images]
        rows = []
        for copy in range(copies):
            transform = augment_recipe.build(albumentations, AugmentConfig(), spec["size"], seed=copy)
            batch = normalize(np.stack([transform(image=image)["image"] for image in pixels]), spec)
            rows.append(embeddings_of(model, batch).astype(np.float16))
        rows = np.stack(rows)
        save_rows(path, rows)
        return rows, False


@bp.get("/fashion")
def fashion():
    """Rows ``start``…``start+count`` (at most: the split has :data:`FASHION_ROWS`) of a lesson split (``train``: Fashion-MNIST's training file,
    ``validation``: its test file): 28×28 grey pixels, labels and the served model's embeddings."""
    split = params.choice("split", tuple(FASHION_SPLITS))
    start = params.integer("start", 0, 0, FASHION_ROWS - 1)
    count = params.integer("count", 100, 1, FASHION_CHUNK)
    count = min(count, FASHION_ROWS - start)  # the split's last rows: fewer than asked
    model = served_model()
    started = time.perf_counter()
    images, labels = fashion_rows(FASHION_SPLITS[split])
    vectors, cached = fashion_embeddings(model, split, images, start + count)
    rows = slice(start, start + count)
    return jsonify(model={"name": model.name, "version": model.version}, split=split, start=start, count=count,
                   total=FASHION_ROWS, classes=list(real_data.FASHION_MNIST_CLASSES), labels=labels[rows].tolist(),
                   pixels=encoded(images[rows]), embeddings=encoded(vectors[rows]), cached=cached,
                   elapsed_ms=round((time.perf_counter() - started) * 1e3, 1))


@bp.get("/fashion/augmented")
def fashion_augmented():
    """Embeddings of ``copies`` augmented copies (training recipe, default settings) of the first ``count``
    ``train`` images: what training adds to a small set."""
    count = params.integer("count", 20, 1, 100)
    copies = params.integer("copies", 4, 1, 8)
    model = served_model()
    started = time.perf_counter()
    images, labels = fashion_rows(FASHION_SPLITS["train"])
    vectors, cached = augmented_embeddings(model, images[:count], copies)
    return jsonify(model={"name": model.name, "version": model.version}, count=count, copies=copies,
                   labels=labels[:count].tolist(), embeddings=encoded(vectors), cached=cached,
                   elapsed_ms=round((time.perf_counter() - started) * 1e3, 1))
