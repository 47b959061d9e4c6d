"""Benchmark: every export format side by side, for the default model and for a fine-tuned one.

One run exports both models (`riim export`'s code), prints each parity table (agreement, |Δp|, accuracy,
size, single-image p50/p95 per runtime, all measured in the same process on the same real images), the
ONNX Runtime fp32 / tf_keras ``model(x)`` latency ratio and batched ONNX Runtime throughput. Usage::

    .venv/bin/python benchmarks/bench_formats.py [--repeats 30] [--batch 32]

The fine-tuned model is trained here on Fashion-MNIST (bag / sneaker / trouser, 40 images each, 96²),
so its test split joins the parity images and its training split calibrates int8.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cli import pipeline
from export import parity
from export.exporter import export_version
from export.heldout import evaluation_set
from models import training_config as config
from models.card import parity_table
from models.registry import Registry
from training import default_model, importers


def throughput(path: Path, batch: np.ndarray, threads: int = 2, rounds: int = 3) -> float:
    """Images per second of one ONNX Runtime session on ``batch``."""
    run = parity.onnx_runner(path, threads)
    run(batch)
    started = time.perf_counter()
    for _ in range(rounds):
        run(batch)
    return rounds * len(batch) / (time.perf_counter() - started)


def summarize(registry: Registry, name: str, data_dir, batch_size: int) -> None:
    card = registry.card(name)
    report = card["parity"]["report"]
    print(f"\n=== {name}:{card['version']}  input {card['input']['size']}²")
    print(parity_table(report))
    rows = report["formats"]
    keras_p50 = rows["keras"]["latency_ms"]["keras_call"]["p50"]
    for fmt in ("onnx", "onnx_int8"):
        for runtime, times in rows[fmt]["latency_ms"].items():
            print(f"{fmt} {runtime}: p50 {times['p50']:.1f} ms = {times['p50'] / keras_p50:.3f}x tf_keras model(x)")
    images = evaluation_set(card, data_dir).batch
    batch = images[np.arange(batch_size) % len(images)]
    for fmt in ("onnx", "onnx_int8"):
        rate = throughput(registry.file(name, None, fmt), batch)
        print(f"{fmt} batched (batch {batch_size}, 2 threads): {rate:.0f} img/s")
    for fmt in ("onnx_int8", "tflite_int8", "tflite_dynamic", "tfjs_uint8"):
        base = "tflite" if fmt.startswith("tflite") else "onnx"
        print(f"size {fmt} / {base}: {rows[fmt]['bytes'] / rows[base]['bytes']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="riim-bench-formats-"))
    registry = Registry(work / "store")

    started = time.perf_counter()
    pipeline.build_default(registry, full=False)
    export_version(registry, default_model.NAME, repeats=args.repeats)
    print(f"default model built + exported in {time.perf_counter() - started:.0f} s")

    data_dir = importers.fashion_mnist(work / "fashion", 40, ("bag", "sneaker", "trouser"))
    settings = config.from_dict({"input_size": 96, "head": {"epochs": 20}, "augment": {"copies": 1}})
    started = time.perf_counter()
    pipeline.train(registry, data_dir, "fashion", settings)
    export_version(registry, "fashion", data_dir=data_dir, repeats=args.repeats)
    print(f"fine-tuned model trained + exported in {time.perf_counter() - started:.0f} s")

    summarize(registry, default_model.NAME, None, args.batch)
    summarize(registry, "fashion", data_dir, args.batch)


if __name__ == "__main__":
    main()
