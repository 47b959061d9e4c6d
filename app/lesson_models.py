"""Live numbers for the model lessons (pruning, quantization, model formats, active learning).

Everything is computed on the served model's real files, with numpy and ONNX Runtime only:

- pruning: the head's kernel (``head.npz``, the Dense layer that turns the 1,280-number embedding into the
  model's scores) pruned by magnitude — histograms before/after, the size of its zeros after gzip, and a
  photo's answer at each sparsity; plus the pruning tables *measured* by training (``benchmarks/
  bench_pruning.py`` → ``web/lessons/measured/pruning.json``, and any registry version whose card has one);
- quantization: the same kernel worked out as uint8 (scale, zero point, round trip, error), checked against
  the scale the TF.js uint8 export stored; the sizes and the export's parity rows of every variant;
- formats: one photo through the float32 and int8 ONNX files (answers, latency, agreement), the ONNX graph
  summary written at export (``network.json``) and what ONNX Runtime reports about the inputs/outputs;
- active learning: the labels-vs-accuracy curves measured by ``benchmarks/bench_active.py`` and the bundled
  real photos ranked by the labelling queue's uncertainty (:func:`app.labelling.uncertainty`).

Photos arrive as one uploaded ``image`` (the lesson pages send a bundled photo's bytes or the student's own);
nothing is stored.
"""
from __future__ import annotations

import json
import statistics
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from flask import Blueprint, current_app, jsonify

from app import api, network, params
from app.errors import ApiError
from app.inference import LoadedModel, model_cache
from app.labelling import uncertainty
from app.security import csrf, limiter
from models import atomic, decision, real_data
from models.preprocess import preprocess

bp = Blueprint("lesson_models", __name__, url_prefix="/api/v1/lessons")
MEASURED = Path(__file__).resolve().parent.parent / "web" / "lessons" / "measured"
SPARSITIES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95)
HISTOGRAM_BINS = 41
UINT8_LEVELS = 255
SAMPLE_VALUES = 8
TFJS_KERNEL_SUFFIX = "/MatMul/ReadVariableOp"
UNCERTAINTY_ORDERS = ("margin", "entropy")


def served_model() -> LoadedModel:
    """The version served for ``?model=`` (default: the class model), or the documented 4xx."""
    return api.loaded_model(api.requested_model())


def head_of(model: LoadedModel) -> dict[str, np.ndarray]:
    head = model.arrays.get("head")
    if head is None:
        raise ApiError(409, "no_head", model=model.name)
    return head


def one_image():
    """The one uploaded ``image`` of the request (a bundled sample's bytes or the student's photo), decoded."""
    uploads = api.uploaded_images()
    if len(uploads) != 1:
        raise ApiError(400, "too_many_images", limit=1)
    api.check_pixel_budget(uploads)
    return api.decode(*uploads[0])


def model_info(model: LoadedModel) -> dict:
    return {"name": model.name, "version": model.version, "labels": model.card["labels"]}


def measured(name: str) -> dict | None:
    """A measurement stored by a benchmark (``web/lessons/measured/<name>.json``), or None."""
    return atomic.read_json(MEASURED / f"{name}.json")


# --- pruning --------------------------------------------------------------------------------------------

def prune(kernel: np.ndarray, sparsity: float, order: np.ndarray | None = None) -> np.ndarray:
    """``kernel`` with its ``sparsity`` fraction of smallest-magnitude weights set to 0 (magnitude pruning).
    ``order`` (the flat indices sorted by magnitude, :func:`magnitude_order`) saves the search when given."""
    count = int(round(sparsity * kernel.size))
    if count == 0:
        return kernel
    flat = kernel.ravel().copy()
    smallest = order[:count] if order is not None else np.argpartition(np.abs(flat), count - 1)[:count]
    flat[smallest] = 0.0
    return flat.reshape(kernel.shape)


_ORDERS: dict[tuple[str, str, int], np.ndarray] = {}
_SWEEPS: dict[tuple[str, str, int], list[dict]] = {}


def magnitude_order(model: LoadedModel, kernel: np.ndarray) -> np.ndarray:
    """The head kernel's flat indices, smallest magnitude first (once per loaded version: versions are immutable)."""
    key = (model.name, model.version, model.stamp)
    if key not in _ORDERS:
        _ORDERS[key] = np.argsort(np.abs(kernel).ravel())
    return _ORDERS[key]


def histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    return np.histogram(values, edges)[0].astype(int).tolist()


def pruning_tables(model: LoadedModel) -> list[dict]:
    """Pruning tables measured by training: the stored benchmark, then every registry version that has one."""
    tables = []
    stored = measured("pruning")
    if stored:
        tables.append({"source": "benchmark", "command": stored["command"], "measured": stored["measured"],
                       "data": stored["data"], **stored["pruning"]})
    registry = model_cache().registry
    for name in registry.models():
        for version in registry.versions(name):
            pruning = registry.card(name, version).get("optimization", {}).get("pruning")
            if pruning:
                tables.append({"source": "registry", "model": name, "version": version, **pruning})
    return tables


def size_sweep(model: LoadedModel, kernel: np.ndarray) -> list[dict]:
    """Zeros and gzip size of the kernel at each sparsity (once per loaded version)."""
    key = (model.name, model.version, model.stamp)
    if key not in _SWEEPS:
        rows = []
        for target in SPARSITIES:
            weights = prune(kernel, target, magnitude_order(model, kernel)).astype(np.float32)
            rows.append({"sparsity": target, "zeros": int((weights == 0).sum()), "bytes": int(weights.nbytes),
                         "gzip_bytes": len(zlib.compress(weights.tobytes(), 1))})
        _SWEEPS[key] = rows
    return _SWEEPS[key]


@bp.get("/pruning")
def pruning():
    """The served head pruned by magnitude: histograms at ``sparsity`` (percent), and for each sparsity of
    the sweep the zeros and the gzip size of the kernel; plus the measured pruning tables."""
    sparsity = params.integer("sparsity", 50, 0, 99) / 100
    model = served_model()
    kernel = head_of(model)["kernel"]
    pruned = prune(kernel, sparsity, magnitude_order(model, kernel))
    limit = float(np.abs(kernel).max())
    edges = np.linspace(-limit, limit, HISTOGRAM_BINS + 1)
    kept = pruned[pruned != 0]
    return jsonify(
        model=model_info(model),
        tensor={"name": "head.kernel", "shape": list(kernel.shape), "count": int(kernel.size)},
        sparsity=sparsity, threshold=float(np.abs(kept).min()) if kept.size else None,
        histogram={"edges": [round(float(edge), 5) for edge in edges], "before": histogram(kernel, edges),
                   "after": histogram(kept, edges), "zeros_after": int(kernel.size - kept.size)},
        sweep=size_sweep(model, kernel), tables=pruning_tables(model))


def head_answer(model: LoadedModel, embedding: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> dict:
    """The model's probabilities for one embedding through a (pruned) head, and its decision without OOD.

    A head with one column per label gives the probabilities by softmax; the default model's head is
    ImageNet's, whose softmax is summed per label with the card's ``label_mapping``."""
    logits = embedding @ kernel + bias
    exp = np.exp(logits - logits.max())
    softmax = exp / exp.sum()
    labels, mapping = model.card["labels"], model.card.get("label_mapping")
    if kernel.shape[1] == len(labels):
        probabilities = softmax
    elif mapping:
        probabilities = np.array([softmax[mapping[label]].sum() for label in labels])
    else:
        raise ApiError(409, "no_head", model=model.name)
    label, unknown = decision.decide(model.card, probabilities)
    answer = {"label": label, "unknown": unknown,
              "probabilities": {name: round(float(p), 4) for name, p in zip(labels, probabilities)}}
    if mapping and model.tag_labels is not None:
        answer["tags"] = [{**tag, "probability": round(tag["probability"], 4)}
                          for tag in decision.top_k_tags(model.card, softmax, model.tag_labels)]
    return answer


@bp.post("/pruning")
@csrf.exempt
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def pruning_photo():
    """One photo's answer with the head pruned to each sparsity of the sweep (one ONNX run for the
    embedding, then the head in numpy); ``max_abs_dp_unpruned`` checks the numpy head against ONNX."""
    model = served_model()
    head = head_of(model)
    image = one_image()
    outputs = model.run(preprocess(image, model.card["input"])[None])
    names = model.card["outputs"]
    embedding = outputs[names["embedding"]][0]
    order = magnitude_order(model, head["kernel"])
    answers = [{"sparsity": target, **head_answer(model, embedding, prune(head["kernel"], target, order), head["bias"])}
               for target in SPARSITIES]
    served = outputs[names["probabilities"]][0]
    check = max(abs(answers[0]["probabilities"][label] - float(p)) for label, p in zip(model.card["labels"], served))
    return jsonify(model=model_info(model), answers=answers, max_abs_dp_unpruned=round(check, 4))


# --- quantization ---------------------------------------------------------------------------------------

def uint8_affine(values: np.ndarray) -> dict:
    """Affine uint8 quantization as TF.js' ``--quantize_uint8`` does it: 256 levels between min and max,
    the zero point chosen so that 0.0 is exactly representable."""
    low, high = float(min(values.min(), 0.0)), float(max(values.max(), 0.0))
    scale = (high - low) / UINT8_LEVELS
    zero_point = int(round(-low / scale))
    q = np.clip(np.round(values / scale) + zero_point, 0, UINT8_LEVELS).astype(np.uint8)
    back = (q.astype(np.float32) - zero_point) * scale
    error = np.abs(back - values)
    return {"min": low, "max": high, "scale": scale, "zero_point": zero_point, "nudged_min": -zero_point * scale,
            "q": q, "back": back,
            "max_abs_error": float(error.max()), "mean_abs_error": float(error.mean())}


def int8_symmetric_error(values: np.ndarray, axis: int | None) -> float:
    """Mean round-trip error of symmetric int8 (zero point 0, scale = max|w| / 127), per tensor (``axis``
    None) or per output channel — what the ONNX int8 export does for weights."""
    scale = np.abs(values).max(axis=axis, keepdims=axis is not None) / 127
    back = np.clip(np.round(values / scale), -127, 127) * scale
    return float(np.abs(back - values).mean())


def tfjs_uint8_kernel(model: LoadedModel) -> dict | None:
    """The quantization the TF.js uint8 export stored for the head kernel (its manifest entry), if any."""
    entry = model.card["files"].get("tfjs_uint8")
    if entry is None:
        return None
    manifest = json.loads((model_cache().registry.path(model.name, model.version) / entry["path"]).read_text())
    shape = list(head_of(model)["kernel"].shape)
    for group in manifest["weightsManifest"]:
        for weight in group["weights"]:
            if weight["shape"] == shape and weight.get("quantization") and weight["name"].endswith(TFJS_KERNEL_SUFFIX):
                return {"name": weight["name"], **weight["quantization"]}
    return None


def variants(card: dict) -> list[dict]:
    """Every exported file of the card with its size (a TF.js entry's bytes count its weight shards) and,
    when the export measured it, its parity row."""
    rows = card.get("parity", {}).get("report", {}).get("formats", {})
    return [{"format": fmt, "bytes": entry["bytes"], **({"parity": rows[fmt]} if fmt in rows else {})}
            for fmt, entry in card["files"].items() if fmt.startswith(("keras", "onnx", "tflite", "tfjs"))]


@bp.get("/quantization")
def quantization():
    """The head kernel quantized to uint8 step by step (min/max → scale, zero point → a few values and back),
    its error next to int8 per tensor and per channel, the TF.js export's own scale, and every variant."""
    model = served_model()
    kernel = head_of(model)["kernel"].astype(np.float32)
    result = uint8_affine(kernel)
    flat = kernel.ravel()
    picks = [int(np.argmin(flat)), int(np.argmax(flat))]
    picks += np.random.default_rng(0).choice(flat.size, SAMPLE_VALUES - 2, replace=False).tolist()
    samples = [{"index": index, "value": float(flat[index]), "q": int(result["q"].ravel()[index]),
                "back": float(result["back"].ravel()[index]),
                "error": float(abs(result["back"].ravel()[index] - flat[index]))} for index in picks]
    return jsonify(
        model=model_info(model),
        tensor={"name": "head.kernel", "shape": list(kernel.shape), "count": int(kernel.size),
                "float32_bytes": int(kernel.nbytes), "uint8_bytes": int(kernel.size)},
        uint8={key: result[key] for key in ("min", "max", "scale", "zero_point", "nudged_min", "max_abs_error",
                                            "mean_abs_error")},
        samples=samples,
        int8_mean_abs_error={"per_tensor": int8_symmetric_error(kernel, None),
                             "per_channel": int8_symmetric_error(kernel, 0)},
        weight_std=float(kernel.std()), tfjs_uint8=tfjs_uint8_kernel(model), variants=variants(model.card))


# --- formats --------------------------------------------------------------------------------------------

_SESSIONS: dict[tuple[str, str, str], LoadedModel] = {}
_SESSIONS_LOCK = threading.Lock()


def variant_model(model: LoadedModel, precision: str) -> LoadedModel:
    """The served version loaded at ``precision`` (fp32 is the served session; int8 is loaded once)."""
    if precision == "fp32" and model.fmt == "onnx":
        return model
    key = (model.name, model.version, precision)
    with _SESSIONS_LOCK:
        loaded = _SESSIONS.get(key)
        if loaded is None or loaded.stamp != model.stamp:
            loaded = LoadedModel.load(model_cache().registry, model.name, model.version,
                                      current_app.config["ORT_THREADS"], precision)
            _SESSIONS[key] = loaded
        return loaded


def timed_answer(model: LoadedModel, batch: np.ndarray, repeats: int) -> dict:
    """The answer for one preprocessed image and the median latency of ``repeats`` runs (after a warm-up)."""
    outputs = model.run(batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.run(batch)
        times.append((time.perf_counter() - started) * 1e3)
    result = model.results(outputs)[0]
    path = model_cache().registry.file(model.name, model.version, model.fmt, verify=False)
    return {"format": model.fmt, "bytes": path.stat().st_size, "label": result["label"],
            "unknown": result["unknown"], "confidence": round(result["confidence"], 4),
            "probabilities": {k: round(v, 4) for k, v in result["probabilities"].items()},
            "latency_ms": round(statistics.median(times), 2), "runs": repeats}


def graph(model: LoadedModel) -> dict:
    """What the ONNX file holds: ONNX Runtime's inputs/outputs and metadata, and the export's graph summary."""
    session = model.session
    meta = session.get_modelmeta()
    tensor = lambda value: {"name": value.name, "shape": [d if isinstance(d, int) else None for d in value.shape],  # noqa: E731
                            "type": value.type}
    summary = None
    if "network" in model.card["files"]:
        described = network.description(model_cache().registry, model.name, model.version)
        summary = {key: described[key] for key in ("op_types", "nodes", "parameters")}
        summary["blocks"] = len(described["blocks"])
    return {"inputs": [tensor(value) for value in session.get_inputs()],
            "outputs": [tensor(value) for value in session.get_outputs()],
            "producer": meta.producer_name, "graph_name": meta.graph_name,
            "summary": summary}


@bp.post("/formats")
@csrf.exempt
@limiter.limit(lambda: current_app.config["RATE_LIMIT_PREDICT"])
def formats():
    """One photo through the float32 and (when exported) int8 ONNX files of the served version: answers,
    median latency of ``repeats`` runs, agreement; the graph summary and the export's parity report."""
    repeats = params.integer("repeats", 5, 1, 20)
    model = served_model()
    image = one_image()
    batch = preprocess(image, model.card["input"])[None]
    answers = [timed_answer(variant_model(model, "fp32"), batch, repeats)]
    if "onnx_int8" in model.card["files"]:
        answers.append(timed_answer(variant_model(model, "int8"), batch, repeats))
    agreement = None
    if len(answers) == 2:
        first, second = answers
        agreement = {"same_answer": first["label"] == second["label"],
                     "max_abs_dp": round(max(abs(first["probabilities"][k] - second["probabilities"][k])
                                             for k in first["probabilities"]), 4)}
    return jsonify(model=model_info(model), answers=answers, agreement=agreement, graph=graph(model),
                   parity=model.card.get("parity", {}).get("report"), variants=variants(model.card))


# --- active learning ------------------------------------------------------------------------------------

def queue_of_samples(model: LoadedModel) -> list[dict]:
    """The bundled real photos ranked as the labelling queue ranks uploads: most uncertain (margin) first."""
    try:
        photos = real_data.photo_files()
    except real_data.MissingDataError as error:
        raise ApiError(503, "lesson_data_missing", reason=str(error)) from None
    batch = np.stack([preprocess(api.decode(photo.name, photo.path.read_bytes()), model.card["input"])
                      for photo in photos])
    rows = []
    for photo, result in zip(photos, model.results(model.run(batch))):
        rows.append({"name": photo.name, "truth": photo.label, "label": result["label"],
                     "confidence": round(result["confidence"], 4),
                     **{method: round(uncertainty(result["probabilities"], method), 4)
                        for method in UNCERTAINTY_ORDERS}})
    return sorted(rows, key=lambda row: -row["margin"])


@bp.get("/active-learning")
def active_learning():
    """The labels-vs-accuracy curves measured by ``benchmarks/bench_active.py`` (random vs uncertainty
    sampling; whether they were measured on the version served now), and the bundled photos as the queue
    would order them."""
    stored = measured("active-learning")
    if stored is None:
        raise ApiError(404, "not_measured", command="benchmarks/bench_active.py --json "
                                                    "web/lessons/measured/active-learning.json")
    model = served_model()
    same = model.card["files"].get("onnx", {}).get("sha256") == stored["model"]["onnx_sha256"]
    return jsonify(model=model_info(model), measured_on_served_model=same, curve=stored,
                   queue=queue_of_samples(model))
