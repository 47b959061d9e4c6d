"""fp32 vs int8 ONNX of the served default model, side by side in one run (1 and 2 ORT threads).

    .venv/bin/python benchmarks/bench_int8.py [--models-dir models/store] [--repeats 60]

Prints the p50 of each and the int8/fp32 ratio, interleaving the two sessions so the machine's load hits both.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

from models.registry import DEFAULT_ROOT, Registry


def session(path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    parser.add_argument("--model", default="animals")
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    registry = Registry(args.models_dir)
    image = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)
    for threads in (1, 2):
        sessions = {fmt: session(registry.file(args.model, None, fmt), threads) for fmt in ("onnx", "onnx_int8")}
        times = {fmt: [] for fmt in sessions}
        for _ in range(5):
            for running in sessions.values():
                running.run(None, {"image": image})
        for _ in range(args.repeats):
            for fmt, running in sessions.items():
                started = time.perf_counter()
                running.run(None, {"image": image})
                times[fmt].append((time.perf_counter() - started) * 1e3)
        fp32, int8 = (statistics.median(times[fmt]) for fmt in ("onnx", "onnx_int8"))
        print(f"{threads} thread(s): fp32 p50 {fp32:.2f} ms, int8 p50 {int8:.2f} ms, int8/fp32 {int8 / fp32:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
