"""The deep-learning service of the source document under ``/api/v1/dl/``, served by ONNX Runtime only.

- ``GET model-info``: CPU/GPU detection, ONNX Runtime providers, the time-series models and their cards.
- ``POST train-price-predictor | train-spread-predictor | train-anomaly-detector | train-pattern-model``
  (``epochs``, ``batch_size``, ``learning_rate``, optional ``window`` and ``series``; query or JSON body):
  a background job (:mod:`app.job_kinds`) running ``riim series train --preset …``; 202 + the job's URL.
- ``POST predict-price`` ``{"sequence": [window values]}`` → the next ``horizon`` values, with the naive
  (and, when the sequence covers a season, seasonal-naive) forecast beside them.
- ``POST detect-anomalies?threshold=`` ``{"series": [values]}`` → per-point scores and the flagged points;
  the threshold defaults to the one calibrated at training (the card's ``anomaly.value``).
- ``GET evaluation?model=`` → the current version's held-out evaluation (curves, forecast vs actual,
  baselines, injected anomalies) for the /series page, which this module also serves.

Windowing, scaling and scoring are :mod:`models.series`, the same code training evaluated with.
"""
from __future__ import annotations

import math
import time
from importlib import metadata

import numpy as np
import onnxruntime as ort
from flask import Blueprint, Flask, jsonify, render_template, request, url_for

from app import device, job_kinds, jobs, params
from app.auth import admin_required
from app.errors import ApiError
from app.inference import model_cache
from app.security import csrf
from models import atomic
from models import series as ts
from models.real_data import MissingDataError
from models.registry import RegistryError
from models.series_config import DEFAULT_NAMES

bp = Blueprint("dl", __name__, url_prefix="/api/v1/dl")
page_bp = Blueprint("series", __name__)  # the /series page (web/templates/series.html + js/series.js)
TASKS = ("time-series-forecasting", "time-series-anomaly")
PRESETS = {  # endpoint → (`riim series train --preset`, network); the job kind and model are the network's
    # registry name (models/series_config.py DEFAULT_NAMES: series-price, series-spread, series-cnn, series-anomaly)
    "train-price-predictor": ("price", "lstm"),
    "train-spread-predictor": ("spread", "gru"),
    "train-pattern-model": ("cnn", "cnn"),
    "train-anomaly-detector": ("anomaly", "autoencoder"),
}
TITLES = {"series-price": ("Predictor de precio (LSTM)", "Price predictor (LSTM)"),
          "series-spread": ("Predictor de diferencial (GRU)", "Spread predictor (GRU)"),
          "series-cnn": ("Modelo de patrones (CNN 1-D)", "Pattern model (1-D CNN)"),
          "series-anomaly": ("Detector de anomalías (autocodificador)", "Anomaly detector (autoencoder)")}
LIMITS = {"epochs": (1, 200, 20), "batch_size": (8, 1024, 32), "window": (4, 200, None)}  # (low, high, default)
MAX_POINTS = 20000


# --- training jobs ----------------------------------------------------------------------------------

def _number(name: str, value, low: float, high: float, include_low: bool = False) -> float:
    """A finite number in (low, high] (or [low, high]) from JSON (a number) or the query (text), else a 400
    naming it."""
    if isinstance(value, str) and len(value) <= 40:
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (low <= value if include_low else low < value) or value > high:
        raise ApiError(400, "bad_param", name=name, value=str(value)[:80])
    return float(value)


def _integer(name: str, value, low: int, high: int) -> int:
    """A JSON integer; 114.0 (as in JSON Schema) and the text "114" (a form's field) count too."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and (parsed := params.as_int(value, low, high)) is not None:
        value = parsed
    return params.json_int(name, value, low, high)


def parse_options(options: dict) -> dict:
    """``epochs``, ``batch_size``, ``learning_rate`` (the document's), ``window`` and ``series`` checked."""
    unknown = sorted(set(options) - {"epochs", "batch_size", "learning_rate", "window", "series"})
    if unknown:
        raise ApiError(400, "unknown_param", name=unknown[0][:80])
    clean = {"epochs": _integer("epochs", options.get("epochs", LIMITS["epochs"][2]), *LIMITS["epochs"][:2]),
             "batch_size": _integer("batch_size", options.get("batch_size", LIMITS["batch_size"][2]),
                                    *LIMITS["batch_size"][:2]),
             "learning_rate": _number("learning_rate", options.get("learning_rate", 0.001), 0, 1)}
    if options.get("window") is not None:
        clean["window"] = _integer("window", options["window"], *LIMITS["window"][:2])
    if options.get("series") is not None:
        if not isinstance(options["series"], str) or options["series"] not in ts.SERIES:
            raise ApiError(400, "bad_param", name="series", value=str(options["series"])[:80])
        clean["series"] = options["series"]
    return clean


def _kind(endpoint: str) -> job_kinds.JobKind:
    preset, network = PRESETS[endpoint]
    name = DEFAULT_NAMES[network]

    def stages(options: dict) -> list[tuple[str, list[str]]]:
        argv = ["series", "train", "--preset", preset, "--dir", "{dir}/work", "--epochs", str(options["epochs"]),
                "--batch-size", str(options["batch_size"]), "--learning-rate", repr(options["learning_rate"]),
                "--models-dir", "{models_dir}", "--progress-file", "{progress}", "--result-file", "{result}",
                "--log-json"]
        argv += ["--window", str(options["window"])] if "window" in options else []
        argv += ["--series", options["series"]] if "series" in options else []
        return [("train", argv)]

    es, en = TITLES[name]
    return job_kinds.JobKind(name=name, title={"es": es, "en": en}, parse=parse_options, model=lambda _: name,
                             stages=stages)


KINDS = {endpoint: job_kinds.register(_kind(endpoint)) for endpoint in PRESETS}


def _train(endpoint: str):
    """Options from the JSON body, else the query string (the document passes them as query parameters)."""
    body = request.get_json(silent=True) if request.data else None
    if request.data and not isinstance(body, dict):
        raise ApiError(400, "series_bad_options")
    options = body if body is not None else {key: request.args[key] for key in request.args if key != "lang"}
    job = jobs.start_kind(KINDS[endpoint].name, options)
    return jsonify(job=job.as_json(), url=url_for("jobs.show", job_id=job.id)), 202


def _route(endpoint: str):
    view = admin_required(lambda: _train(endpoint))
    view.__name__ = endpoint.replace("-", "_")
    bp.post(f"/{endpoint}")(view)


for _endpoint in PRESETS:
    _route(_endpoint)


# --- serving ----------------------------------------------------------------------------------------

def _model(default: str, task: str):
    """The ``model`` query parameter (default ``default``): a promoted version of a model of ``task``."""
    name = params.text("model", default)
    registry = model_cache().registry
    if name not in registry.models(task) or registry.current(name) is None:
        raise ApiError(404, "series_no_model", model=name[:80])
    try:
        return model_cache().get(name)
    except RegistryError as error:
        raise ApiError(503, "model_unavailable", model=name, reason=str(error)) from None


def _values(field: str, low: int, high: int) -> np.ndarray:
    """The JSON body's ``field``: a list of ``low``..``high`` finite numbers, else a 400 that says what is wrong."""
    body = request.get_json(silent=True)
    values = body.get(field) if isinstance(body, dict) else None
    if not isinstance(values, list):
        raise ApiError(400, "series_bad_body", field=field)
    if not low <= len(values) <= high:
        raise ApiError(400, "series_bad_length", field=field, expected=str(low) if low == high else f"{low}–{high}",
                       got=len(values))
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(400, "series_not_number", field=field, index=index, value=str(value)[:40])
        if not math.isfinite(value):
            raise ApiError(400, "series_not_finite", field=field, index=index)
    return np.asarray(values, dtype=np.float64)


# CSRF-exempt on purpose (as /api/v1/predict): the public JSON API must work from curl and scripts; it
# stores nothing.
@bp.post("/predict-price")
@csrf.exempt
def predict_price():
    """``{"sequence": [window values]}`` → ``horizon`` predicted values (and the baselines)."""
    loaded = _model("series-price", TASKS[0])
    spec = loaded.card["series"]
    past = _values("sequence", spec["window"], spec["window"])[None, :]
    scaler = ts.Scaler.from_card(spec["scaler"])
    started = time.perf_counter()
    output = loaded.session.run(None, {spec["input"]["name"]: ts.encode(past, scaler)})[0]
    elapsed = (time.perf_counter() - started) * 1e3
    baselines = {"naive": ts.naive(past, spec["horizon"])[0].tolist()}
    if 1 < spec["season"] <= spec["window"]:
        baselines["seasonal_naive"] = ts.seasonal_naive(past[0], np.array([spec["window"]]), spec["horizon"],
                                                        spec["season"])[0].tolist()
    return jsonify(model={"name": loaded.name, "version": loaded.version, "kind": spec["model"]},
                   window=spec["window"], horizon=spec["horizon"], target=spec["target"],
                   predictions=ts.decode(output, past, scaler)[0].tolist(), baselines=baselines,
                   inference_ms=round(elapsed, 3))


@bp.post("/detect-anomalies")
@csrf.exempt
def detect_anomalies():
    """``{"series": [values]}`` (at least one window) → per-point scores; points above the threshold
    (``?threshold=``, else the calibrated one) are flagged."""
    loaded = _model("series-anomaly", TASKS[1])
    spec = loaded.card["series"]
    raw = params.text("threshold")
    threshold = loaded.card["anomaly"]["value"] if raw is None else _number("threshold", raw, 0, 1e12, include_low=True)
    values = _values("series", spec["window"], MAX_POINTS)
    scaler = ts.Scaler.from_card(spec["scaler"])
    past = np.lib.stride_tricks.sliding_window_view(values, spec["window"])
    started = time.perf_counter()
    x = ts.encode_centred(past, scaler)
    reconstruction = loaded.session.run(None, {spec["input"]["name"]: x})[0]
    scores = ts.point_scores((reconstruction - x[..., 0]) ** 2, len(values))
    elapsed = (time.perf_counter() - started) * 1e3
    flagged = np.flatnonzero(scores > threshold)
    return jsonify(model={"name": loaded.name, "version": loaded.version}, window=spec["window"],
                   threshold=threshold, threshold_source="query" if raw is not None else "calibrated",
                   calibrated_threshold=loaded.card["anomaly"]["value"], scores=scores.tolist(),
                   flagged=[{"index": int(i), "value": float(values[i]), "score": float(scores[i])} for i in flagged],
                   inference_ms=round(elapsed, 3))


def _summary(name: str) -> dict:
    registry = model_cache().registry
    current = registry.current(name)
    entry = {"name": name, "task": registry.task(name), "current": current, "versions": registry.versions(name),
             "train_endpoint": next((f"/api/v1/dl/{e}" for e, k in KINDS.items() if k.name == name), None)}
    if current:
        card = registry.card(name, current)
        spec = card["series"]
        entry.update(
            created=card["created"], description=card.get("description"),
            series={key: spec[key] for key in ("model", "architecture", "window", "horizon", "features", "target",
                                               "season", "scaler", "step", "last_window") if key in spec},
            data=[{k: f[k] for k in ("file", "rows", "start", "end") if k in f} for f in spec["data"]["files"]],
            training={k: card["training"][k] for k in ("epochs", "epochs_run", "batch_size", "learning_rate",
                                                       "seconds", "windows") if k in card["training"]},
            heldout=card["metrics"].get("heldout", {}).get("overall"),
            anomaly={"threshold": card["anomaly"], **{k: card["metrics"]["anomaly"]["injected"][k]
                                                       for k in ("method", "mean_auroc", "mean_precision_at_k")}}
            if "anomaly" in card else None,
            formats=sorted(card["files"]))
    return entry


@bp.get("/model-info")
def model_info():
    registry = model_cache().registry
    return jsonify(device=device.describe(), onnxruntime={"version": ort.__version__,
                                                           "providers": ort.get_available_providers()},
                   numpy=metadata.version("numpy"),
                   models=[_summary(name) for task in TASKS for name in registry.models(task)],
                   series=sorted(ts.SERIES), train_endpoints=sorted(f"/api/v1/dl/{e}" for e in PRESETS))


@bp.get("/series/<name>")
def bundled(name: str):
    """A real series bundled with statsmodels (co2, sunspots) as JSON, for the lessons' in-browser demos."""
    if name not in ts.BUNDLED:
        raise ApiError(404, "series_unknown", name=name[:80], known=", ".join(ts.BUNDLED))
    try:
        return jsonify(ts.bundled_series(name))
    except MissingDataError as error:
        raise ApiError(503, "lesson_data_missing", reason=str(error)) from None


@bp.get("/evaluation")
def evaluation():
    """The current version's evaluation file (training curves, held-out plots) and its summary."""
    task = params.choice("task", TASKS, TASKS[0])
    loaded = _model(params.text("model", "series-price" if task == TASKS[0] else "series-anomaly"), task)
    registry = model_cache().registry
    data = atomic.read_json(registry.file(loaded.name, loaded.version, "evaluation"))
    return jsonify(model=_summary(loaded.name), **(data or {}))


@page_bp.get("/series")
def page():
    return render_template("series.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(page_bp)
