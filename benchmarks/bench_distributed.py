"""Benchmark: one worker vs a 2-worker tf.distribute cluster on 127.0.0.1, the same data and config.

Real Fashion-MNIST (Debian ``dataset-fashion-mnist``), ``--per-class`` training-file images of each class,
the head-only recipe with augmentation. Each run is a real ``riim train`` (the cluster: two processes with
``--cluster``/``--task-index``), one after the other so they do not share the cores. Printed side by side:
wall time of the whole command, the chief's stage seconds from the card (features = this worker's shard),
and the accuracy of each published ONNX model on ``--held-out`` unseen test-file images per class.

On one machine both workers share its cores, so the cluster cannot be faster here: it shows the price of the
collective ops and of two TensorFlow start-ups. On separate hosts each worker extracts the features of half
the training images, which is where the time goes at full size. Usage::

    nice -n 5 .venv/bin/python benchmarks/bench_distributed.py [--per-class 100] [--input-size 96]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from models.preprocess import load_image, preprocess_batch  # noqa: E402
from models.registry import Registry  # noqa: E402
from tests.support import free_ports  # noqa: E402
from training import data, importers  # noqa: E402

CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
RIIM = str(Path(sys.executable).with_name("riim"))


def run(root: Path, data_dir: Path, config: Path, workers: int) -> tuple[float, Registry]:
    """Wall seconds of ``riim train`` on ``workers`` processes, and the registry it published to."""
    store = root / f"store-{workers}"
    cluster = ",".join(f"127.0.0.1:{port}" for port in free_ports(workers))
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    started = time.perf_counter()
    processes = [subprocess.Popen([RIIM, "train", "--data", str(data_dir), "--name", "bench", "--config", str(config),
                                   "--models-dir", str(store), "--log-json"]
                                  + (["--cluster", cluster, "--task-index", str(i)] if workers > 1 else []),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for i in range(workers)]
    for process in processes:
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"riim train failed:\n{err[-3000:]}")
        print("   ", out.strip())
    return time.perf_counter() - started, Registry(store)


def accuracy(registry: Registry, held_out: data.Dataset) -> float:
    session = ort.InferenceSession(str(registry.file("bench", None, "onnx")), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    images = [load_image(held_out.root / s.path) for s in held_out.samples]
    batch = preprocess_batch(images, registry.card("bench")["input"])
    outputs = dict(zip(names, session.run(None, {"image": batch})))
    return float(np.mean(outputs["probabilities"].argmax(1) == held_out.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--held-out", type=int, default=50)
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    settings = {"input_size": args.input_size, "augment": {"copies": 1}, "head": {"epochs": 30, "patience": 6}}
    figures = {"per_class": args.per_class, "classes": len(CLASSES), "config": settings, "cores": os.cpu_count(),
               "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        data_dir = importers.fashion_mnist(root / "data", args.per_class, CLASSES)
        held_out = data.scan(importers.fashion_mnist(root / "held", args.held_out, CLASSES, source="test"))
        config = root / "config.json"
        config.write_text(json.dumps(settings))
        print(f"{args.per_class} images x {len(CLASSES)} classes, input {args.input_size}, "
              f"{len(held_out.samples)} held-out; load average {figures['load_average']:.1f} on {os.cpu_count()} cores")
        for workers in (1, 2):
            print(f"== {workers} worker(s)")
            wall, registry = run(root, data_dir, config, workers)
            card = registry.card("bench")
            figures[f"workers_{workers}"] = {
                "wall_seconds": round(wall, 1), "stage_seconds": card["training"]["seconds"],
                "epochs": len(card["metrics"]["curves"]["head"]["loss"]),
                "test_accuracy": card["metrics"]["test"]["accuracy"],
                "held_out_accuracy": round(accuracy(registry, held_out), 4),
                "versions_published": len(registry.versions("bench"))}
            print(f"   {figures[f'workers_{workers}']}")
    one, two = figures["workers_1"], figures["workers_2"]
    print(f"\n{'':24}{'1 worker':>12}{'2 workers':>12}{'ratio':>8}")
    for label, key in (("wall time (s)", "wall_seconds"), ("held-out accuracy", "held_out_accuracy")):
        print(f"{label:24}{one[key]:>12}{two[key]:>12}{two[key] / one[key]:>8.2f}")
    for stage in ("features", "head", "total"):
        a, b = one["stage_seconds"].get(stage), two["stage_seconds"].get(stage)
        print(f"{'chief ' + stage + ' (s)':24}{a:>12}{b:>12}{b / a:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
