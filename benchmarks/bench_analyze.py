"""Benchmark: plain predict vs full analysis (predict + CAM + anomalies) through the API, side by side.

Both run in one process on the same real photos, alternating, so the ratio is meaningful on a noisy
machine. The default model is built and calibrated into a temporary registry unless ``--models-dir``
already holds a calibrated one. Usage::

    .venv/bin/python benchmarks/bench_analyze.py [--repeats 40] [--models-dir DIR]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

from cli import pipeline
from models.registry import Registry
from training import default_model, real_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--models-dir", default=None)
    args = parser.parse_args()

    registry = Registry(args.models_dir or tempfile.mkdtemp(prefix="riim-bench-"))
    pipeline.ensure_default(registry, export=False)
    os.environ.setdefault("RIIM_INSTANCE_PATH", tempfile.mkdtemp(prefix="riim-bench-instance-"))
    from app import create_app, prepare

    app = create_app({"MODELS_DIR": str(registry.root)})
    prepare(app)
    client = app.test_client()
    photos = [p.png_bytes() for p in real_photos.cat_dog_photos() + real_photos.ood_photos()]
    queries = {"plain predict": "?store=0", "full analysis (explain=1&anomaly=1)": "?store=0&explain=1&anomaly=1"}
    samples = {name: {"total": [], "server": []} for name in queries}
    for i in range(args.repeats + 1):
        for name, query in queries.items():
            data = {"image": [(io.BytesIO(photos[i % len(photos)]), "x.png")]}
            started = time.perf_counter()
            body = client.post(f"/api/v1/predict{query}", data=data, content_type="multipart/form-data").get_json()
            if i:  # the first round warms up sessions and caches
                samples[name]["total"].append((time.perf_counter() - started) * 1e3)
                timings = body["timings"]
                samples[name]["server"].append(timings["total_ms"] - timings["decode_ms"])
    print(f"{len(photos)} real photos, {args.repeats} requests each, alternating; "
          f"model {default_model.NAME} (calibrated)\n")
    print(f"{'':<38} {'request p50 ms':>15} {'p95':>8} {'model+analysis p50 ms':>22}")
    p50 = {}
    for name, values in samples.items():
        ordered = sorted(values["total"])
        p50[name] = statistics.median(ordered)
        print(f"{name:<38} {p50[name]:15.1f} {ordered[int(0.95 * (len(ordered) - 1))]:8.1f} "
              f"{statistics.median(values['server']):22.1f}")
    plain, full = p50.values()
    print(f"\nfull / plain p50 = {full / plain:.2f}x (goal <= 3x)")


if __name__ == "__main__":
    main()
