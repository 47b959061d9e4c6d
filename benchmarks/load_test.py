"""Bounded load test: concurrent clients upload real photos to gunicorn on loopback, then nothing may be lost.

It starts ``gunicorn -c app/gunicorn.conf.py`` (production config, a temporary instance folder) on
127.0.0.1, waits until ``/api/v1/ready``, and runs ``--clients`` threads that POST real photos to
``/api/v1/predict`` for ``--seconds`` (at most ``--max-requests`` in all: it always stops by itself).
Each upload is made unique (a comment chunk with its number, no re-encoding), so every accepted request
must leave its own file and row. Half-way it sends SIGHUP (graceful reload: new workers, old ones
finish) unless ``--no-reload``. It reports throughput, latency p50/p95/p99, errors, memory per worker,
and then checks that every accepted upload is in the database and on disk, as the metadata-free copy of the
bytes sent (``app.storage.clean_copy``; its name is the sha256 of the bytes sent). Usage::

    .venv/bin/python benchmarks/load_test.py [--clients 20] [--seconds 60] [--workers N]
        [--ratelimit-storage-uri redis://127.0.0.1:6379]

The clients are a script, so they store their uploads with an API token (``riim tokens create``, made
once the server is ready). Rate limits are counted where ``--ratelimit-storage-uri`` says (default
``$RIIM_RATELIMIT_STORAGE_URI``, else per worker in memory): with Redis every request also updates the
shared counter. The limit is per client address and every client here is 127.0.0.1, so it is raised.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support

from app.storage import clean_copy  # noqa: E402
from tests.support import free_port  # noqa: E402
from training import real_photos  # noqa: E402

BIN = Path(sys.executable).parent
BOUNDARY = "riim-load-" + secrets.token_hex(8)


def seed_files() -> list[tuple[str, bytes]]:
    """Every real photo, JPEG (quality 90) when larger than 64 px, else PNG: what students upload."""
    seeds = []
    for photo in real_photos.cat_dog_photos() + real_photos.ood_photos():
        buffer = io.BytesIO()
        fmt = "JPEG" if min(photo.image.size) > 64 else "PNG"
        photo.image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        seeds.append((fmt, buffer.getvalue()))
    return seeds


def unique_variant(fmt: str, data: bytes, number: int) -> bytes:
    """The same picture with a comment holding ``number`` (JPEG COM segment / PNG tEXt chunk)."""
    text = f"riim load test {number}".encode()
    if fmt == "JPEG":
        return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]
    chunk = b"tEXt" + b"Comment\x00" + text
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + (len(chunk) - 4).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + data[iend:]


def multipart(filename: str, data: bytes) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


class Load:
    """Shared state of the client threads: a bounded counter and the results."""

    def __init__(self, seeds, max_requests: int, deadline: float):
        self.seeds, self.max_requests, self.deadline = seeds, max_requests, deadline
        self.lock = threading.Lock()
        self.issued = 0
        self.results: list[tuple[int, float, int]] = []  # (status, latency s, upload number)

    def next_number(self) -> int | None:
        with self.lock:
            if self.issued >= self.max_requests or time.monotonic() >= self.deadline:
                return None
            self.issued += 1
            return self.issued

    def client(self, port: int, token: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while (number := self.next_number()) is not None:
            fmt, data = self.seeds[number % len(self.seeds)]
            content = unique_variant(fmt, data, number)
            body = multipart(f"photo-{number}.{fmt.lower()}", content)
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/v1/predict", body=body,
                                   headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                                            "Authorization": f"Bearer {token}"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0  # connection error
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latency = time.perf_counter() - started
            with self.lock:
                self.results.append((status, latency, number))
        connection.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(port: int, server: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with {server.returncode}")
        try:
            status, body = get(port, "/api/v1/ready")
            if status == 200:
                return json.loads(body)
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit("gunicorn did not become ready")


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MiB; PSS shares the pages common to all workers fairly."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return fields["Rss"], fields["Pss"]


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def verify(instance: Path, seeds, accepted: list[int]) -> dict:
    """Every accepted upload (by number) has its row and its file, the metadata-free copy of what was sent."""
    with sqlite3.connect(instance / "riim.sqlite3") as connection:
        rows = dict(connection.execute("SELECT sha256, extension FROM upload"))
        predictions = connection.execute("SELECT COUNT(*) FROM prediction").fetchone()[0]
    sent = {number: (seeds[number % len(seeds)][0], unique_variant(*seeds[number % len(seeds)], number))
            for number in accepted}
    shas = {number: hashlib.sha256(content).hexdigest() for number, (_, content) in sent.items()}
    missing_rows = [number for number in accepted if shas[number] not in rows]
    bad_files = [number for number in accepted if shas[number] in rows and not (
        (path := instance / "uploads" / shas[number][:2] / f"{shas[number]}.{rows[shas[number]]}").is_file()
        and path.read_bytes() == clean_copy(sent[number][1], sent[number][0]))]
    files = sum(1 for path in (instance / "uploads").rglob("*") if path.is_file())
    return {"accepted": len(accepted), "rows": len(rows), "files": files, "predictions": predictions,
            "missing_rows": len(missing_rows), "missing_or_bad_files": len(bad_files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: app/gunicorn.conf.py's)")
    parser.add_argument("--models-dir", default=str(REPO / "models" / "store"))
    parser.add_argument("--no-reload", action="store_true", help="do not send SIGHUP half-way")
    parser.add_argument("--ratelimit-storage-uri", default=os.environ.get("RIIM_RATELIMIT_STORAGE_URI", "memory://"),
                        help="where the workers count rate limits, e.g. redis://127.0.0.1:6379")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args()
    if not (1 <= args.clients <= 200 and 0 < args.seconds <= 600):
        parser.error("keep it bounded: 1-200 clients, at most 600 s")

    subprocess.run([str(BIN / "riim"), "models", "default", "--models-dir", args.models_dir], check=True)
    seeds = seed_files()
    instance = Path(tempfile.mkdtemp(prefix="riim-load-"))
    port = free_port()
    env = {**os.environ, "RIIM_ENV": "production", "RIIM_SECRET_KEY": secrets.token_hex(32),
           "RIIM_INSTANCE_PATH": str(instance), "RIIM_MODELS_DIR": args.models_dir,
           "RIIM_BIND": f"127.0.0.1:{port}", **({"RIIM_WORKERS": str(args.workers)} if args.workers else {}),
           "RIIM_RATE_LIMIT_PREDICT": "1000000 per minute", "RIIM_RATELIMIT_STORAGE_URI": args.ratelimit_storage_uri}
    server = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(REPO / "app" / "gunicorn.conf.py")], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=open(instance / "gunicorn.log", "wb"))
    try:
        ready = wait_ready(port, server)
        created = subprocess.run([str(BIN / "riim"), "tokens", "create", "load-test"], env=env, check=True,
                                 capture_output=True, text=True).stdout
        token = next(word for word in created.split() if word.startswith("riim_"))
        workers = args.workers or len(worker_pids(server.pid))
        print(f"gunicorn pid {server.pid}, {workers} workers, model {ready['model']}, rate limits in "
              f"{args.ratelimit_storage_uri}; {args.clients} clients x {args.seconds:.0f} s, {len(seeds)} real photos")
        load = Load(seeds, args.max_requests, time.monotonic() + args.seconds)
        threads = [threading.Thread(target=load.client, args=(port, token)) for _ in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        memory, reloaded = [], False
        while any(thread.is_alive() for thread in threads):
            time.sleep(1)
            elapsed = time.perf_counter() - started
            if not reloaded and elapsed > args.seconds * 0.4:
                memory = [memory_mib(pid) for pid in worker_pids(server.pid)]  # loaded, under load
            if not reloaded and not args.no_reload and elapsed > args.seconds / 2:
                server.send_signal(signal.SIGHUP)
                reloaded = True
        duration = time.perf_counter() - started
        healthy = get(port, "/api/v1/health")[0] == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    statuses: dict[int, int] = {}
    for status, _, _ in load.results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(latency * 1e3 for _, latency, _ in load.results)
    accepted = [number for status, _, number in load.results if status == 200]
    report = {
        "workers": workers, "clients": args.clients, "ratelimit_storage": args.ratelimit_storage_uri,
        "seconds": round(duration, 1),
        "requests": len(load.results), "statuses": statuses, "errors": len(load.results) - len(accepted),
        "throughput_rps": round(len(accepted) / duration, 1),
        "latency_ms": {"p50": round(statistics.median(latencies), 1), "p95": round(percentile(latencies, 0.95), 1),
                       "p99": round(percentile(latencies, 0.99), 1), "max": round(latencies[-1], 1)},
        "graceful_reload_sent": reloaded, "healthy_after": healthy,
        "memory_per_worker_mib": {"rss": [round(rss) for rss, _ in memory], "pss": [round(pss) for _, pss in memory]},
        "stored": verify(instance, seeds, accepted),
    }
    report["lost_uploads"] = report["stored"]["missing_rows"] + report["stored"]["missing_or_bad_files"]
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    sys.exit(0 if report["errors"] == 0 and report["lost_uploads"] == 0 and healthy else 1)


if __name__ == "__main__":
    main()
