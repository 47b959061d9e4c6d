"""Parity report: every exported format against the Keras model on the same preprocessed real images.

Per format: top-1 agreement with Keras on the card's ``probabilities`` output (and on the ImageNet head
when the model keeps it), agreement of the answer users see (label or "unknown"), max and mean |Δp|, accuracy against the expected answers (after the card's
unknown policy), size, and single-image latency p50/p95 for each runtime setting (ONNX Runtime and LiteRT
with 1 and 2 threads, Keras ``model(x)``, TF.js wasm in headless Chromium).
"""
from __future__ import annotations

import datetime as dt
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from export import browser
from export.heldout import ImageSet
from models import decision, metrics

THREADS = (1, 2)
WARMUP = 2


def keras_runner(model):
    """Batch → outputs by name, with ``model(x)`` (no ``predict`` overhead)."""
    def run(batch):
        outputs = model(batch, training=False)
        return {name: np.asarray(value) for name, value in zip(model.output_names, outputs)}
    return run


def onnx_runner(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return lambda batch: dict(zip(names, session.run(None, {"image": batch})))


def tflite_runner(path: Path, threads: int):
    """LiteRT through the serving signature (outputs by Keras name); one image per invocation."""
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner()

    def run(batch):
        rows = [signature(image=image[None]) for image in batch]
        return {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}
    return run


def latency(run, batch: np.ndarray, repeats: int) -> dict:
    """p50 / p95 in ms of ``run`` on single images, cycling through ``batch``."""
    for index in range(WARMUP):
        run(batch[index % len(batch)][None])
    times = []
    for index in range(repeats):
        started = time.perf_counter()
        run(batch[index % len(batch)][None])
        times.append((time.perf_counter() - started) * 1e3)
    return percentiles(times)


def percentiles(times) -> dict:
    return {"p50": round(float(np.percentile(times, 50)), 3), "p95": round(float(np.percentile(times, 95)), 3)}


def compare(card: dict, reference: dict, got: dict, expected: list[str]) -> dict:
    """Agreement, |Δp| and accuracy of ``got`` against the Keras ``reference`` outputs."""
    name = card["outputs"]["probabilities"]
    want, have = reference[name], got[name]
    keras_answers, answers = ([decision.decide(card, p)[0] for p in rows] for rows in (want, have))  # label/"unknown"
    row = {"top1_agreement": metrics.top1_agreement(want, have),
           "answer_agreement": metrics.accuracy(keras_answers, answers),  # Keras's answers taken as the truth
           "max_abs_dp": metrics.max_abs_difference(want, have),
           "mean_abs_dp": metrics.mean_abs_difference(want, have),
           "accuracy": metrics.accuracy(expected, answers)}
    imagenet = card["outputs"].get("imagenet_probabilities")
    if imagenet in reference and imagenet in got:
        row["imagenet_top1_agreement"] = metrics.top1_agreement(reference[imagenet], got[imagenet])
    return row


def size(path: Path) -> int:
    """Bytes of a file, or of a TF.js folder (model.json + shards)."""
    return sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file()) if path.name == "model.json" \
        else path.stat().st_size


def report(card: dict, model, files: dict[str, Path], images: ImageSet, calibration: dict,
           repeats: int = 30) -> dict:
    """The card's ``parity.report``: ``files`` maps format → file (TF.js: its model.json)."""
    wanted = [card["outputs"]["probabilities"]] + [card["outputs"][k] for k in ("imagenet_probabilities",)
                                                   if k in card["outputs"]]
    keep = lambda outputs: {name: outputs[name] for name in wanted}  # noqa: E731
    batch = images.batch
    keras_run = keras_runner(model)
    reference = keep(keras_run(batch))
    rows = {"keras": {"runtime": f"tf_keras {metadata.version('tf-keras')}", "bytes": size(files["keras"]),
                      **compare(card, reference, reference, images.expected),
                      "latency_ms": {"keras_call": latency(keras_run, batch, repeats)}}}
    for fmt, path in files.items():
        if fmt.startswith("onnx"):
            runtime, runners = f"onnxruntime {metadata.version('onnxruntime')}", {
                f"ort_{n}_thread{'s' * (n > 1)}": onnx_runner(path, n) for n in THREADS}
        elif fmt.startswith("tflite"):
            runtime, runners = f"ai-edge-litert {metadata.version('ai-edge-litert')}", {
                f"litert_{n}_thread{'s' * (n > 1)}": tflite_runner(path, n) for n in THREADS}
        elif fmt.startswith("tfjs"):
            run = browser.run_tfjs(path.parent, batch, wanted, repeats)
            rows[fmt] = {"runtime": f"tfjs {metadata.version('tensorflowjs')} {run.backend} in Chromium",
                         "bytes": size(path), **compare(card, reference, run.outputs, images.expected),
                         "latency_ms": {f"chromium_{run.backend}": percentiles(run.latencies_ms)}}
            continue
        else:
            continue
        first = next(iter(runners.values()))
        rows[fmt] = {"runtime": runtime, "bytes": size(path),
                     **compare(card, reference, keep(first(batch)), images.expected),
                     "latency_ms": {label: latency(run, batch, repeats) for label, run in runners.items()}}
    return {"reference": "keras", "output": card["outputs"]["probabilities"],
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "images": {**images.counts, "total": len(batch)},
            "calibration": calibration, "formats": rows}
