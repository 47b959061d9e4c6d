"""The CNN lab page (/lab) and its API under /api/v1/lab/.

- ``GET runs?kind=&status=&q=&limit=`` / ``GET runs/<id>``: the MLflow store, read-only (:mod:`app.lab_runs`).
- ``GET alerts?limit=``: training alerts (newest first) from the alerts file the runs append to.
- ``GET sweeps`` / ``GET sweeps/<name>``: the summaries each sweep rewrites after every trial (history,
  importances computed by Optuna in the trial runner, parameters for the parallel-coordinates chart).
- ``GET models``: the lab's models (task ``small-image-classification``) with their transforms and metrics;
  ``GET models/<name>/sample.png``: the raw test image the page sends through the card's transforms.
- ``POST predict?model=`` (multipart ``image``): a lab model's answer on ONNX Runtime, the image sent through
  the card's transforms by :mod:`models.transforms` — the steps training fitted, applied at serving.
- ``POST train`` / ``POST sweeps`` (admin): background jobs of kind ``lab-train`` / ``lab-sweep``
  (:mod:`app.job_kinds`) running ``riim lab train`` / ``riim lab sweep``; ``{"sweep": name}`` retrains a
  sweep's best trial and publishes it as a version.
"""
from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Blueprint, Flask, current_app, jsonify, render_template, request, send_file, url_for

from app import job_kinds, jobs, lab_runs, params
from app.api import decode, uploaded_images
from app.auth import admin_required
from app.errors import ApiError
from app.inference import model_cache
from app.security import csrf
from app.tail import tail_text
from models import lab_config, transforms
from models.registry import RegistryError
from models.training_config import ConfigError

bp = Blueprint("lab", __name__)
TASK = "small-image-classification"
DEFAULT_MODEL = "fashion-cnn"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# form field → (config section, key); the page and the job's options use the field names
FIELDS = {"epochs": ("train", "epochs"), "learning_rate": ("train", "learning_rate"),
          "batch_size": ("train", "batch_size"), "depth": ("model", "depth"), "width": ("model", "width"),
          "dropout": ("model", "dropout"), "augment_strength": ("augment", "strength"),
          "train_images": ("data", "train_images"), "test_images": ("data", "test_images")}
MAX_TRIALS = 50
MAX_ALERTS = 200
ALERT_BYTES = 4096  # more than one alert line takes (about 300 bytes)


def lab_dir() -> Path:
    return Path(current_app.config.get("LAB_DIR") or Path(current_app.instance_path) / "lab")


# --- jobs ------------------------------------------------------------------------------------------

def _name(options: dict, key: str, default: str | None) -> str | None:
    value = options.get(key, default)
    if value is not None and (not isinstance(value, str) or not NAME.fullmatch(value)):
        raise ApiError(400, "bad_param", name=key, value=str(value)[:80])
    return value


def parse_train(options: dict, extra: tuple[str, ...] = ("name", "sweep"), default_name: str = DEFAULT_MODEL) -> dict:
    """The lab form's fields, checked by the typed config (models/lab_config.py); unknown ones are a 400."""
    unknown = sorted(set(options) - set(FIELDS) - set(extra))
    if unknown:
        raise ApiError(400, "unknown_param", name=unknown[0][:80])
    changes: dict = {}
    for field, (section, key) in FIELDS.items():
        if field in options:
            changes.setdefault(section, {})[key] = options[field]
    try:
        lab_config.from_dict(changes)
    except ConfigError as error:
        raise ApiError(400, "bad_config", problems="; ".join(error.problems)) from None
    clean = {field: options[field] for field in FIELDS if field in options}
    for key, default in (("name", default_name), ("sweep", None)):
        if key in extra and (value := _name(options, key, default)) is not None:
            clean[key] = value
    return clean


def parse_sweep(options: dict) -> dict:
    trials = options.get("trials", 20)
    if isinstance(trials, bool) or not isinstance(trials, (int, float)) or not float(trials).is_integer() \
            or not 1 <= trials <= MAX_TRIALS:  # 38.0 is the integer 38, as in JSON Schema
        raise ApiError(400, "bad_param", name="trials", value=str(trials)[:80])
    trials = int(trials)
    return {**parse_train({k: v for k, v in options.items() if k != "trials"}, ("name",), "sweep"), "trials": trials}


def _settings(options: dict) -> list[str]:
    argv = []
    for field, (section, key) in FIELDS.items():
        if field in options:
            argv += ["--set", f"{section}.{key}={json.dumps(options[field])}"]
    return argv


def _environment() -> list[str]:
    return ["--lab-dir", str(lab_dir())]


def train_stages(options: dict) -> list[tuple[str, list[str]]]:
    argv = ["lab", "train", "--name", options["name"], "--models-dir", "{models_dir}", *_environment(),
            "--progress-file", "{progress}", "--result-file", "{result}", "--log-json", *_settings(options)]
    return [("train", argv + (["--sweep", options["sweep"]] if "sweep" in options else []))]


def sweep_stages(options: dict) -> list[tuple[str, list[str]]]:
    return [("sweep", ["lab", "sweep", "--name", options["name"], "--trials", str(options["trials"]), *_environment(),
                       "--progress-file", "{progress}", "--result-file", "{result}", "--log-json",
                       *_settings(options)])]


TRAIN_KIND = job_kinds.register(job_kinds.JobKind(
    name="lab-train", title={"es": "Laboratorio: entrenar una CNN", "en": "Lab: train a CNN"}, parse=parse_train,
    model=lambda options: options["name"], stages=train_stages))
SWEEP_KIND = job_kinds.register(job_kinds.JobKind(
    name="lab-sweep", title={"es": "Laboratorio: búsqueda de hiperparámetros", "en": "Lab: hyperparameter sweep"},
    parse=parse_sweep, model=lambda options: f"sweep-{options['name']}", stages=sweep_stages))


def _start(kind: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_param", name="body", value=str(body)[:80])
    job = jobs.start_kind(kind, body)
    return jsonify(job=job.as_json(), url=url_for("jobs.show", job_id=job.id)), 202


@bp.post("/api/v1/lab/train")
@admin_required
def start_training():
    return _start(TRAIN_KIND.name)


@bp.post("/api/v1/lab/sweeps")
@admin_required
def start_sweep():
    return _start(SWEEP_KIND.name)


# --- reading -----------------------------------------------------------------------------------------

@bp.get("/lab")
def page():
    return render_template("lab.html")


@bp.get("/api/v1/lab/runs")
def list_runs():
    kind = params.choice("kind", ("all", "lab-train", "lab-sweep-trial", "lab-transfer", "train"), "all")
    status = params.choice("status", ("all", "running", "finished", "failed", "killed"), "all")
    found = lab_runs.runs(lab_dir(), None if kind == "all" else kind, None if status == "all" else status,
                          params.text("q"), params.integer("limit", 100, 1, 500))
    return jsonify(runs=found, best=lab_runs.best(found))


@bp.get("/api/v1/lab/runs/<run_id>")
def show_run(run_id: str):
    found = lab_runs.run(lab_dir(), run_id) if lab_runs.RUN_ID.fullmatch(run_id) else None
    if found is None:
        raise ApiError(404, "not_found")
    return jsonify(run=found)


@bp.get("/api/v1/lab/alerts")
def list_alerts():
    limit = params.integer("limit", 50, 1, MAX_ALERTS)
    found = []
    for line in tail_text(lab_dir() / "alerts.jsonl", (limit + 1) * ALERT_BYTES).splitlines()[-limit:]:
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash (or by the tail's start) is skipped, the others shown
    return jsonify(alerts=found[::-1])


@bp.get("/api/v1/lab/sweeps")
def list_sweeps():
    folder = lab_dir() / "sweeps"
    names = sorted(p.stem for p in folder.glob("*.json") if NAME.fullmatch(p.stem)) if folder.is_dir() else []
    return jsonify(sweeps=names)


@bp.get("/api/v1/lab/sweeps/<name>")
def show_sweep(name: str):
    path = lab_dir() / "sweeps" / f"{name}.json"
    if not NAME.fullmatch(name) or not path.is_file():
        raise ApiError(404, "not_found")
    return jsonify(sweep=json.loads(path.read_text()))


def _summary(registry, name: str) -> dict:
    card = registry.card(name)
    return {"name": name, "version": card["version"], "description": card.get("description"),
            "labels": card["labels"], "input": card["input"], "transforms": card["transforms"],
            "architecture": card["architecture"], "seconds": card["training"].get("seconds"),
            "data": card["training"].get("data"),
            "metrics": {k: {"accuracy": v["accuracy"], "macro_f1": v["macro_f1"], "images": v["images"]}
                        for k, v in card["metrics"].items() if k in ("test", "validation")},
            "curves": card["metrics"].get("curves"), "parity": card.get("parity", {}).get("onnx_vs_keras"),
            "sample": url_for("lab.sample", name=name) if "sample" in card["files"] else None}


@bp.get("/api/v1/lab/models")
def list_models():
    registry = model_cache().registry
    found = []
    for name in registry.models(TASK):
        try:
            found.append(_summary(registry, name))
        except (RegistryError, KeyError):
            continue  # no current version yet (published, not exported)
    return jsonify(models=found)


@bp.get("/api/v1/lab/models/<name>/sample.png")
def sample(name: str):
    registry = model_cache().registry
    try:
        if name not in registry.models(TASK):
            raise RegistryError(name)
        path = registry.file(name, None, "sample")
    except RegistryError:
        raise ApiError(404, "unknown_model", model=name[:80]) from None
    return send_file(path, mimetype="image/png", max_age=3600)


@lru_cache(maxsize=4)
def _session(path: str, sha256: str) -> ort.InferenceSession:
    """One ONNX Runtime session per model file (its sha256 in the key: a new version is a new session)."""
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


@bp.post("/api/v1/lab/predict")
@csrf.exempt  # public JSON API like /api/v1/predict: no session, nothing stored
def predict():
    registry = model_cache().registry
    name = params.text("model", DEFAULT_MODEL)
    if name not in registry.models(TASK):
        raise ApiError(404, "unknown_model", model=name[:80])
    try:
        card = registry.card(name)
        path = registry.file(name, None, "onnx")
    except RegistryError:
        raise ApiError(404, "unknown_model", model=name[:80]) from None
    (filename, data), *more = uploaded_images()
    if more:
        raise ApiError(400, "too_many_images", limit=1)
    image = np.asarray(decode(filename, data))
    started = time.perf_counter()
    batch = transforms.Pipeline.from_card(card["transforms"])(image)[None].astype(np.float32)
    probabilities = _session(str(path), card["files"]["onnx"]["sha256"]).run(["probabilities"], {"image": batch})[0][0]
    order = np.argsort(probabilities)[::-1][:3]
    return jsonify(model={"name": name, "version": card["version"]},
                   top=[{"label": card["labels"][i], "probability": round(float(probabilities[i]), 4)} for i in order],
                   input={"shape": list(batch.shape[1:]), "mean": round(float(batch.mean()), 4)},
                   elapsed_ms=round((time.perf_counter() - started) * 1e3, 2))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
