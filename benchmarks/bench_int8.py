"""fp32 vs int8 ONNX of the served default model, side by side in one run (1 and 2 ORT threads).

    .venv/bin/python benchmarks/bench_int8.py [--models-dir models/store] [--repeats 60]

Two ways, each interleaving the fp32 and int8 sessions so the machine's load hits both:
- "file": the registry's files with ONNX Runtime's default session, every output, a random input;
- "served": the sessions as the server opens them (``app.inference.open_session``: the graph optimised once
  and cached, threads that sleep between runs) on a real photo preprocessed by the card, asking only for the
  outputs a plain predict returns (``LoadedModel.answer_outputs``).
Prints the p50 of each and the int8/fp32 ratio.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.inference import LoadedModel, open_session
from models import preprocess
from models.registry import DEFAULT_ROOT, Registry
from training import real_photos

FORMATS = ("onnx", "onnx_int8")


def file_session(path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def p50s(sessions: dict, feed: dict, outputs: list[str] | None, repeats: int) -> dict[str, float]:
    """The median latency (ms) of each session, runs interleaved after 5 warm-up rounds."""
    times = {fmt: [] for fmt in sessions}
    for round_ in range(5 + repeats):
        for fmt, running in sessions.items():
            started = time.perf_counter()
            running.run(outputs, feed)
            if round_ >= 5:
                times[fmt].append((time.perf_counter() - started) * 1e3)
    return {fmt: statistics.median(samples) for fmt, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    parser.add_argument("--model", default="animals")
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    registry = Registry(args.models_dir)
    version = registry.resolve(args.model)
    card = registry.card(args.model, version)
    noise = {"image": np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)}
    photo = {"image": preprocess.preprocess(real_photos.cat_dog_photos()[0].image, card["input"])[None]}
    answer = LoadedModel.load(registry, args.model, version, 1, "fp32").answer_outputs
    with tempfile.TemporaryDirectory() as cache:
        for threads in (1, 2):
            ways = {
                "file": ({fmt: file_session(registry.file(args.model, version, fmt), threads) for fmt in FORMATS},
                         noise, None),
                "served": ({fmt: open_session(registry, args.model, version, fmt, threads, Path(cache))
                            for fmt in FORMATS}, photo, answer),
            }
            for way, (sessions, feed, outputs) in ways.items():
                median = p50s(sessions, feed, outputs, args.repeats)
                fp32, int8 = median["onnx"], median["onnx_int8"]
                print(f"{threads} thread(s), {way:6s}: fp32 p50 {fp32:.2f} ms, int8 p50 {int8:.2f} ms, "
                      f"int8/fp32 {int8 / fp32:.2f}", flush=True)


if __name__ == "__main__":
    main()
