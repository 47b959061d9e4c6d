"""Benchmark: ONNX Runtime session options for serving (issue 22, item 1), side by side in one run.

For the default model's fp32 and int8 files (``riim models default`` in ``--models-dir``), each variant is
built ``--rounds`` times, round-robin so that a neighbour's load hits every variant alike, and reports the
median session creation time and the median single-image latency (``--requests`` runs of a real photo):

- ``file``: the registry's file, ORT's default optimisation (``ORT_ENABLE_ALL``), 1 intra-op thread;
- ``cached``: the file :func:`app.inference.optimised_file` writes once into the ORT cache (what serving
  loads), same options;
- ``2 threads`` / ``2 threads, no spin``: 2 intra-op threads, with and without spinning;
- ``no arena``: the CPU memory arena off.

It also checks that the cached file answers like the original (max |Δ| of the probabilities). Usage::

    .venv/bin/python benchmarks/bench_session.py [--models-dir /tmp/md-store] [--rounds 5] [--requests 100]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.inference import optimised_file
from models.preprocess import preprocess_batch
from models.registry import Registry
from training import real_photos

BIN = Path(sys.executable).parent
VARIANTS = {  # name -> (use the cached file, intra-op threads, spinning, memory arena)
    "file": (False, 1, True, True),
    "cached": (True, 1, True, True),
    "2 threads": (True, 2, True, True),
    "2 threads, no spin": (True, 2, False, True),
    "no arena": (True, 1, True, False),
}


def session(path: Path, threads: int, spinning: bool, arena: bool) -> tuple[ort.InferenceSession, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = arena
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    started = time.perf_counter()
    created = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return created, (time.perf_counter() - started) * 1e3


def latency(created: ort.InferenceSession, batch: np.ndarray, requests: int) -> float:
    for _ in range(5):
        created.run(["probabilities"], {"image": batch})
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        created.run(["probabilities"], {"image": batch})
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default="/tmp/md-store")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    subprocess.run([str(BIN / "riim"), "models", "default", "--models-dir", args.models_dir], check=True,
                   stdout=subprocess.DEVNULL)
    registry = Registry(args.models_dir)
    version = registry.resolve("animals")
    card = registry.card("animals", version)
    batch = preprocess_batch([real_photos.photo("skimage/chelsea").image], card["input"])
    cache = Path(tempfile.mkdtemp(prefix="riim-ort-cache-"))
    for key in ("onnx", "onnx_int8"):
        if key not in card["files"]:
            continue
        source = registry.file("animals", version, key)
        started = time.perf_counter()
        cached = optimised_file(source, card["files"][key]["sha256"], cache)
        once = (time.perf_counter() - started) * 1e3
        print(f"\n{key} ({source.name}): optimised once into the cache in {once:.0f} ms", flush=True)
        reference = session(source, 1, True, True)[0].run(["probabilities"], {"image": batch})[0]
        again = session(cached, 1, True, True)[0].run(["probabilities"], {"image": batch})[0]
        print(f"  cached vs file: max |Δp| {float(np.abs(again - reference).max()):.2e}", flush=True)
        created: dict[str, list[float]] = {name: [] for name in VARIANTS}
        latencies: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, (use_cache, threads, spinning, arena) in VARIANTS.items():
                made, ms = session(cached if use_cache else source, threads, spinning, arena)
                created[name].append(ms)
                latencies[name].append(latency(made, batch, args.requests))
        base_create, base_latency = statistics.median(created["file"]), statistics.median(latencies["file"])
        print(f"  {'variant':<22}{'create ms':>10}{'vs file':>9}{'p50 ms':>9}{'vs file':>9}")
        for name in VARIANTS:
            create, run = statistics.median(created[name]), statistics.median(latencies[name])
            print(f"  {name:<22}{create:>10.0f}{create / base_create:>8.2f}x{run:>9.2f}{run / base_latency:>8.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
