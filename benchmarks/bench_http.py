"""Benchmark: HTTP predict on loopback with the production server (issue 22, item 7).

Serves the real default model (``riim models default`` in ``--models-dir``) with ``gunicorn -c
app/gunicorn.conf.py`` in a subprocess (a temporary instance folder, as ``benchmarks/load_test.py`` does)
and measures two things:

1. **Single-client latency split** (``--single-config``, default 1 worker × 2 ORT threads): ``--requests``
   sequential uploads, each made unique (a JPEG comment) so that every one is really stored, of a 224² JPEG
   and of a real camera photo (darknet's ``dog.jpg``, 768×576). For each, p50 / p95 of the client's
   latency and of the server's own ``timings`` (decode, preprocess, inference = model + decision + tags);
   ``store+db`` is the handler's total minus those (saving the upload, the prediction row, the commit) and
   ``outside`` is the client's latency minus the handler's total (HTTP, multipart parsing, JSON
   serialisation, gunicorn).
2. **Throughput vs workers × ORT threads** (``--configs``, default 1x2 2x1 3x1 5x1 2x2): for each, a fresh
   server and ``--clients`` concurrent clients uploading every real photo (JPEG q90 / PNG, each unique) for
   ``--seconds``; in ``--rounds`` round-robin rounds (median reported): requests per second, latency p50 / p95,
   errors, and the ratio to ``app/gunicorn.conf.py``'s default (one worker per core × 1 ORT thread; the
   measurement that chose it).

Rate limits are counted in a private redis-server, as ``make serve`` does (``--limits memory``: per worker).
Figures are noisy on a shared machine; compare the ratios of one run. Usage::

    .venv/bin/python benchmarks/bench_http.py [--models-dir /tmp/md-store] [--requests 100]
        [--configs 1x2 2x1 3x1 5x1 2x2] [--clients 8] [--seconds 10] [--rounds 3] [--limits redis] [--json out.json]
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support starts redis-server
from load_test import (
    BIN,
    BOUNDARY,
    REPO,
    multipart,
    percentile,
    seed_files,
    unique_variant,
    wait_ready,
)

from tests.support import free_port, redis_server
from training import real_photos

REAL_PHOTO = Path("/usr/share/darknet/data/dog.jpg")


@contextmanager
def server(models_dir: str, workers: int, ort_threads: int, limits_uri: str):
    """A production gunicorn on a free loopback port, rate limits counted in ``limits_uri``: yields (port,
    API token)."""
    instance = Path(tempfile.mkdtemp(prefix="riim-http-"))
    port = free_port()
    env = {**os.environ, "RIIM_ENV": "production", "RIIM_SECRET_KEY": secrets.token_hex(32),
           "RIIM_INSTANCE_PATH": str(instance), "RIIM_MODELS_DIR": models_dir,
           "RIIM_WORKERS": str(workers), "RIIM_ORT_THREADS": str(ort_threads), "RIIM_BIND": f"127.0.0.1:{port}",
           "RIIM_RATE_LIMIT_PREDICT": "1000000 per minute", "RIIM_RATELIMIT_STORAGE_URI": limits_uri}
    with open(instance / "gunicorn.log", "wb") as log:
        process = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(REPO / "app" / "gunicorn.conf.py")],
                                   cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_ready(port, process)
        created = subprocess.run([str(BIN / "riim"), "tokens", "create", "bench-http"], env=env, check=True,
                                 capture_output=True, text=True).stdout
        token = next(word for word in created.split() if word.startswith("riim_"))
        time.sleep(1.0)  # let every worker finish loading its session (post_worker_init)
        yield port, token
    finally:
        process.terminate()
        process.wait(timeout=60)


def post(connection: http.client.HTTPConnection, token: str, filename: str, data: bytes) -> tuple[int, bytes]:
    connection.request("POST", "/api/v1/predict", body=multipart(filename, data),
                       headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                                "Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    return response.status, response.read()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), percentile(ordered, 0.95)


def single_client(port: int, token: str, data: bytes, requests: int, offset: int) -> dict:
    """p50/p95 of each part of one client's sequential requests (after 5 warm-up requests)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    parts: dict[str, list[float]] = {}
    for number in range(requests + 5):
        body = unique_variant("JPEG", data, offset + number)
        started = time.perf_counter()
        status, answer = post(connection, token, f"bench-{offset + number}.jpg", body)
        client_ms = (time.perf_counter() - started) * 1e3
        if status != 200:
            raise SystemExit(f"predict answered {status}: {answer[:300]!r}")
        if number < 5:
            continue
        timings = json.loads(answer)["timings"]
        row = {"client": client_ms, **{key.removesuffix("_ms"): value for key, value in timings.items()}}
        row["store+db"] = timings["total_ms"] - sum(timings.get(key, 0.0) for key in timings if key != "total_ms")
        row["outside"] = client_ms - timings["total_ms"]
        for key, value in row.items():
            parts.setdefault(key, []).append(value)
    connection.close()
    return {key: [round(q, 2) for q in quantiles(values)] for key, values in parts.items()}


def throughput(port: int, token: str, seeds, clients: int, seconds: float) -> dict:
    lock, results, counter = threading.Lock(), [], [0]
    deadline = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                counter[0] += 1
                number = counter[0]
            fmt, data = seeds[number % len(seeds)]
            started = time.perf_counter()
            try:
                status, _ = post(connection, token, f"load-{number}.{fmt.lower()}", unique_variant(fmt, data, number))
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                results.append((status, time.perf_counter() - started))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration = time.perf_counter() - started
    latencies = [latency * 1e3 for status, latency in results if status == 200]
    p50, p95 = quantiles(latencies) if latencies else (float("nan"), float("nan"))
    return {"rps": round(len(latencies) / duration, 1), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
            "requests": len(results), "errors": len(results) - len(latencies)}


def parse_config(text: str) -> tuple[int, int]:
    workers, threads = text.lower().split("x")
    return int(workers), int(threads)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default="/tmp/md-store")
    parser.add_argument("--requests", type=int, default=100, help="Single-client requests per image.")
    parser.add_argument("--single-config", type=parse_config, default=(1, 2), help="WORKERSxTHREADS, e.g. 1x2.")
    parser.add_argument("--configs", nargs="*", type=parse_config,
                        default=[(1, 2), (2, 1), (3, 1), (5, 1), (2, 2)])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="Throughput rounds; the median is reported.")
    parser.add_argument("--limits", choices=("redis", "memory"), default="redis",
                        help="Where rate limits are counted: a private redis-server, as `make serve` does, or "
                             "per worker in memory.")
    parser.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 5 and 1 <= args.clients <= 64 and 0 < args.seconds <= 120
            and 1 <= args.requests <= 2000):
        parser.error("keep it bounded: 1-64 clients, at most 120 s per config, 1-2000 requests")
    with redis_server() if args.limits == "redis" else contextlib.nullcontext("memory://") as limits_uri:
        return measure(args, limits_uri)


def measure(args, limits_uri: str) -> dict:
    subprocess.run([str(BIN / "riim"), "models", "default", "--models-dir", args.models_dir], check=True,
                   stdout=subprocess.DEVNULL)
    cores = os.cpu_count()
    chelsea = real_photos.photo("skimage/chelsea").image
    images = {"224² JPEG": jpeg(chelsea.resize((224, 224), Image.BILINEAR)),
              f"real photo {Image.open(REAL_PHOTO).size[0]}×{Image.open(REAL_PHOTO).size[1]}": REAL_PHOTO.read_bytes()}
    report = {"cores": cores, "single": {}, "throughput": {}}

    workers, threads = args.single_config
    print(f"Single client, {workers} worker × {threads} ORT threads, {args.requests} requests each "
          "(ms, p50 / p95):", flush=True)
    with server(args.models_dir, workers, threads, limits_uri) as (port, token):
        for index, (name, data) in enumerate(images.items()):
            report["single"][name] = single_client(port, token, data, args.requests, 10_000 * (index + 1))
    order = ("decode", "preprocess", "inference", "store+db", "outside", "total", "client")
    found = {k for split in report["single"].values() for k in split}
    keys = [k for k in order if k in found] + sorted(found - set(order))  # new server timings too
    print(f"{'':<14}" + "".join(f"{name:>22}" for name in report["single"]))
    for key in keys:
        cells = [report["single"][name].get(key) for name in report["single"]]
        print(f"{key:<14}" + "".join(f"{c[0]:>12.1f} / {c[1]:>6.1f}" if c else f"{'-':>22}" for c in cells))

    seeds = seed_files()
    default = (cores, 1)
    configs = list(dict.fromkeys([*args.configs, default]))
    print(f"\nThroughput, {args.clients} clients × {args.seconds:.0f} s, {len(seeds)} real photos, {cores} cores "
          f"(gunicorn default here: {default[0]}x{default[1]}):", flush=True)
    runs: dict[str, list[dict]] = {f"{w}x{t}": [] for w, t in configs}
    for round_number in range(args.rounds):  # round-robin, so a neighbour's load hits every config alike
        for workers, threads in configs:
            load = os.getloadavg()[0]
            with server(args.models_dir, workers, threads, limits_uri) as (port, token):
                row = throughput(port, token, seeds, args.clients, args.seconds)
            runs[f"{workers}x{threads}"].append(row)
            print(f"  round {round_number + 1} {workers}x{threads}: {row['rps']:6.1f} req/s  p50 {row['p50_ms']:6.1f} ms"
                  f"  p95 {row['p95_ms']:6.1f} ms  errors {row['errors']}  (load before {load:.1f})", flush=True)
    for config, rows in runs.items():  # the median round by throughput
        report["throughput"][config] = {**sorted(rows, key=lambda r: r["rps"])[len(rows) // 2],
                                        "errors": sum(r["errors"] for r in rows), "rounds_rps": [r["rps"] for r in rows]}
    base = report["throughput"][f"{default[0]}x{default[1]}"]["rps"]
    print(f"\nMedian of {args.rounds} rounds (errors: all rounds):")
    print(f"{'workers x ORT threads':<24}{'req/s':>8}{'vs default':>12}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}")
    for config, row in report["throughput"].items():
        print(f"{config:<24}{row['rps']:>8.1f}{row['rps'] / base:>11.2f}x{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
              f"{row['errors']:>8}   rounds {row['rounds_rps']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
