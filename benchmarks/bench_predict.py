"""Benchmark: single-image latency of ONNX Runtime vs tf_keras ``model(x)``, and batched throughput.

Both run side by side in one process on the same preprocessed real photos, so the ratio is meaningful on
a noisy machine. Usage::

    .venv/bin/python benchmarks/bench_predict.py [--repeats 50] [--batch 32]

It builds the default model into a temporary registry unless ``--models-dir`` already holds it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort

from cli import pipeline
from models.preprocess import preprocess
from models.registry import Registry
from training import default_model, real_photos
from training.tf import keras


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def time_calls(function, inputs, repeats: int) -> list[float]:
    function(inputs[0])  # warm-up
    samples = []
    for i in range(repeats):
        x = inputs[i % len(inputs)]
        started = time.perf_counter()
        function(x)
        samples.append((time.perf_counter() - started) * 1e3)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--models-dir", default=None)
    args = parser.parse_args()

    registry = Registry(args.models_dir or tempfile.mkdtemp(prefix="riim-bench-"))
    photos = real_photos.cat_dog_photos() + real_photos.ood_photos()
    pipeline.ensure_default(registry, export=False, calibrate=False)
    card = registry.card(default_model.NAME)
    inputs = [preprocess(p.image, card["input"])[None] for p in photos]
    print(f"model {card['name']}:{card['version']}  input {card['input']['size']}²  {len(inputs)} real photos")

    model = keras.models.load_model(registry.path(default_model.NAME) / "model.keras", compile=False)
    rows = [("tf_keras model(x)", time_calls(lambda x: model(x, training=False), inputs, args.repeats))]
    onnx_path = str(registry.file(default_model.NAME, None, "onnx"))
    sessions = {}
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sessions[threads] = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        run = sessions[threads].run
        rows.append((f"ONNX Runtime fp32, {threads} thread(s)",
                     time_calls(lambda x, run=run: run(None, {"image": x}), inputs, args.repeats)))

    keras_p50 = percentiles(rows[0][1])[0]
    print(f"\n{'single image':<34} {'p50 ms':>8} {'p95 ms':>8} {'vs Keras':>9}")
    for name, samples in rows:
        p50, p95 = percentiles(samples)
        print(f"{name:<34} {p50:8.1f} {p95:8.1f} {p50 / keras_p50:8.2f}x")

    batch = np.concatenate([inputs[i % len(inputs)] for i in range(args.batch)])
    print(f"\n{'batched throughput (batch ' + str(args.batch) + ')':<34} {'img/s':>8}")
    for name, function in [("tf_keras model(x)", lambda: model(batch, training=False)),
                           ("ONNX Runtime fp32, 2 threads", lambda: sessions[2].run(None, {"image": batch}))]:
        function()
        started = time.perf_counter()
        for _ in range(3):
            function()
        print(f"{name:<34} {3 * args.batch / (time.perf_counter() - started):8.1f}")


if __name__ == "__main__":
    main()
