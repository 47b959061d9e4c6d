"""What one hostile anonymous request costs the server: CPU-seconds and peak RSS growth per request.

A child process serves the app (single-threaded werkzeug server on 127.0.0.1, rate limits off, a temporary
instance folder) with the tiny ONNX model of ``tests/tiny_model.py`` unless ``--models-dir`` names a
registry (e.g. ``models/store`` with the real default model). For each case this process resets the
server's peak-RSS mark (``/proc/<pid>/clear_refs``), sends the request, and reads the server's CPU time
(user + system, every thread) and its peak RSS (``VmHWM``) minus its RSS before the request. Goal for
every anonymous request: at most 1 s of CPU, at most 300 MB of RSS growth and no 5xx. Usage::

    .venv/bin/python benchmarks/hostile_cost.py [--models-dir DIR] [--repeat 1]

The generators come from ``tests/test_hostile.py`` and ``tests/test_budget.py``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import free_port  # noqa: E402
from tests.test_budget import flat_rgba_png, grey16_png, long_header_multipart, many_scans_jpeg, rle8_bmp  # noqa: E402
from tests.test_hostile import decompression_bomb, encode, png  # noqa: E402
from training import real_photos  # noqa: E402

CPU_GOAL, RSS_GOAL_MB = 1.0, 300


def serve(port: int, models_dir: str) -> None:
    """The child: the app on 127.0.0.1:``port``, one request at a time."""
    from werkzeug.serving import make_server

    from app import create_app, prepare

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log
    app = create_app({"MODELS_DIR": models_dir, "RATELIMIT_ENABLED": False})
    prepare(app)
    make_server("127.0.0.1", port, app, threaded=False).serve_forever()


def multipart(images: list[bytes]) -> tuple[bytes, str]:
    boundary = "riim-cost-" + secrets.token_hex(8)
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{index}.img"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                    for index, data in enumerate(images)) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Client:
    """Requests to the server with one cookie jar (for the CSRF token's session)."""

    def __init__(self, port: int):
        self.port, self.cookie, self.token = port, "", {}

    def send(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {"Content-Length": str(len(body)), **({"Cookie": self.cookie} if self.cookie else {}),
                   **(headers or {})}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.getheader("Set-Cookie"):
            self.cookie = response.getheader("Set-Cookie").split(";", 1)[0]
        connection.close()
        try:
            return response.status, json.loads(payload)
        except ValueError:
            return response.status, {}

    def csrf(self) -> dict:
        return {"X-CSRFToken": self.send("GET", "/api/v1/auth/me")[1]["csrf_token"]}


def cases(client: Client) -> list[tuple[str, callable]]:
    """(name, send) for every case; ``send`` returns (status, json)."""
    photos = real_photos.cat_dog_photos() + real_photos.ood_photos()
    real = [encode(photo.image, "JPEG", quality=90) for photo in photos]
    full = "/api/v1/predict?store=0&explain=1&anomaly=1"
    side_30mp = 5477

    def predict(images, query=full):
        return lambda: client.send("POST", query, *post_body(images))

    def post_body(images):
        body, content_type = multipart(images)
        return body, {"Content-Type": content_type}

    def login(body: bytes):
        return lambda: client.send("POST", "/api/v1/auth/login", body,
                                   {"Content-Type": "application/json", **client.token})

    def headers():
        body, content_type = long_header_multipart()
        return client.send("POST", "/api/v1/predict", body, {"Content-Type": content_type})

    progressive_32 = encode(Image.new("RGB", (side_30mp, side_30mp), (120, 130, 140)), "JPEG", progressive=True)
    last_scan = progressive_32[progressive_32.rindex(b"\xff\xda"):-2]
    progressive_32 = progressive_32[:-2] + last_scan * (32 - progressive_32.count(b"\xff\xda")) + progressive_32[-2:]
    return [
        ("one real photo (JPEG), explain+anomaly", predict(real[:1])),
        (f"{len(real[:16])} real photos, explain+anomaly", predict(real[:16])),
        ("RLE8 BMP bomb 7000² (28 KB, confirmed)", predict([rle8_bmp(7000)])),
        ("RLE8 BMP 5000² (under the size cap)", predict([rle8_bmp(5000)])),
        ("progressive JPEG 5000², 1,010 scans", predict([many_scans_jpeg(5000, 1000)])),
        ("progressive JPEG 30 MP, 32 scans (accepted)", predict([progressive_32])),
        ("16 RGBA PNGs 4000² in 1 MB (confirmed)", predict([flat_rgba_png(4000)] * 16)),
        ("2 RGBA PNGs 4000² (32 MP, accepted)", predict([flat_rgba_png(4000)] * 2)),
        ("RGBA PNG 30 MP (largest accepted)", predict([flat_rgba_png(side_30mp)])),
        ("16-bit grey PNG 25 MP", predict([grey16_png(5000)])),
        ("CMYK JPEG 25 MP", predict([encode(Image.new("CMYK", (5000, 5000), (10, 20, 30, 40)), "JPEG")])),
        ("palette PNG + transparency 30 MP", predict([encode(Image.new("P", (side_30mp, side_30mp), 0), "PNG",
                                                             transparency=0)])),
        ("decompression bomb PNG 144 MP", predict([decompression_bomb()])),
        ("declared 20000² PNG", predict([png(20000, 20000)])),
        ("class= 4,400 digits", predict(real[:1], full + "&class=" + "9" * 4400)),
        ("class=² (superscript digit)", predict(real[:1], full + "&class=%C2%B2")),
        ("deeply nested JSON login (100k levels)", login(b"[" * 100_000 + b"]" * 100_000)),
        ("JSON login 9 MB", login(json.dumps({"username": "x" * 9_000_000, "password": "y"}).encode())),
        ("60 parts × 150 KB Content-Disposition", headers),
        ("query of long digit strings (count=)", lambda: client.send(
            "POST", "/api/v1/models/animals/feature-maps?count=" + "9" * 4400, *post_body(real[:1]))),
    ]


def peak_reset(pid: int) -> int:
    """Reset the peak-RSS mark of ``pid``; its RSS now in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return psutil.Process(pid).memory_info().rss


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def tiny_registry(root: Path) -> str:
    from models.registry import Registry
    from tests import tiny_model

    registry = Registry(root)
    tiny_model.publish(registry)
    return str(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", help="registry to serve (default: the tiny model in a temporary folder)")
    parser.add_argument("--repeat", type=int, default=1, help="send each case this many times (max is kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        models_dir = args.models_dir or tiny_registry(Path(scratch) / "store")
        port = free_port()
        env = {**os.environ, "RIIM_INSTANCE_PATH": str(Path(scratch) / "instance")}
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), models_dir], env=env, cwd=REPO)
        try:
            client = Client(port)
            for _ in range(300):
                try:
                    if client.send("GET", "/api/v1/ready")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            process = psutil.Process(server.pid)
            rows = []
            for name, send in cases(client):
                worst = None
                for _ in range(args.repeat):
                    client.token = client.csrf()  # not measured
                    before_rss, before_cpu = peak_reset(server.pid), sum(process.cpu_times()[:2])
                    started = time.perf_counter()
                    status, answer = send()
                    wall = time.perf_counter() - started
                    cpu = sum(process.cpu_times()[:2]) - before_cpu
                    growth = (peak_rss(server.pid) - before_rss) / 2**20
                    code = answer.get("error", {}).get("code", "") if isinstance(answer, dict) else ""
                    row = (name, status, code, cpu, growth, wall)
                    worst = row if worst is None or (cpu, growth) > (worst[3], worst[4]) else worst
                rows.append(worst)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"served: {args.models_dir or 'tiny model (tests/tiny_model.py)'}; goal ≤ {CPU_GOAL} s CPU, "
          f"≤ {RSS_GOAL_MB} MB RSS growth, no 5xx\n")
    print(f"{'case':<44} {'status':>6} {'code':<22} {'CPU s':>6} {'RSS+ MB':>8} {'wall s':>7}")
    for name, status, code, cpu, growth, wall in rows:
        flag = "  <-- over" if cpu > CPU_GOAL or growth > RSS_GOAL_MB or status >= 500 else ""
        print(f"{name:<44} {status:>6} {code:<22} {cpu:>6.2f} {growth:>8.0f} {wall:>7.2f}{flag}")
    over = [row for row in rows if row[3] > CPU_GOAL or row[4] > RSS_GOAL_MB or row[1] >= 500]
    print(f"\nmax CPU {max(r[3] for r in rows):.2f} s, max RSS growth {max(r[4] for r in rows):.0f} MB, "
          f"5xx: {sum(r[1] >= 500 for r in rows)}, over the goal: {len(over)}")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        main()
