"""Rate limits shared by every gunicorn worker through a real redis-server on loopback, and the
reverse-proxy setting (PROXY_HOPS) that decides which client address the limits count."""
from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import serving_app
from tests.support import free_port, redis_server, wait_until

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOGIN_LIMIT = 5


@pytest.fixture
def redis_uri():
    """A real, throw-away redis-server on 127.0.0.1 (Debian package redis-server), stopped afterwards."""
    with redis_server() as uri:
        yield uri


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a new connection each time
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Set-Cookie"), response.read()
    finally:
        connection.close()


@pytest.fixture
def gunicorn(tiny_registry, tmp_path, redis_uri):
    """``make serve``'s gunicorn (app/gunicorn.conf.py, production config) with 2 workers, limits in Redis,
    an access log naming the worker process of each answer; (port, access log)."""
    port, log = free_port(), tmp_path / "access.log"
    env = {**os.environ, "RIIM_ENV": "production", "RIIM_INSTANCE_PATH": str(tmp_path / "instance"),
           "RIIM_MODELS_DIR": str(tiny_registry.root), "RIIM_WORKERS": "2", "RIIM_BIND": f"127.0.0.1:{port}",
           "RIIM_RATELIMIT_STORAGE_URI": redis_uri, "RIIM_RATE_LIMIT_LOGIN": f"{LOGIN_LIMIT} per hour",
           "RIIM_ACCESS_LOG": str(log), "GUNICORN_CMD_ARGS": "--access-logformat '%(p)s %(m)s %(U)s %(s)s'"}
    env.pop("RIIM_SECRET_KEY", None)  # the workers share the instance's generated key
    server = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(REPO / "app" / "gunicorn.conf.py")], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gunicorn.log", "wb"))
    try:
        def ready():
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                return request(port, "GET", "/api/v1/ready")[0] == 200
            except OSError:
                return False

        wait_until(ready, 60, lambda: (tmp_path / "gunicorn.log").read_text())
        yield port, log
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_the_login_limit_holds_across_gunicorn_workers(gunicorn):
    port, log = gunicorn
    status, cookie, body = request(port, "GET", "/api/v1/auth/me")
    headers = {"Content-Type": "application/json", "Cookie": cookie.split(";")[0],
               "X-CSRFToken": json.loads(body)["csrf_token"]}
    attempt = json.dumps({"username": "admin", "password": "a-wrong-password"}).encode()

    def login(_):
        return request(port, "POST", "/api/v1/auth/login", attempt, headers)[0]

    def workers() -> set[str]:
        return {line.split()[0] for line in log.read_text().splitlines() if "/api/v1/auth/login" in line}

    statuses = []
    with ThreadPoolExecutor(4) as pool:  # concurrent connections, so both workers take some
        while len(statuses) < 80 and (len(statuses) < 4 * LOGIN_LIMIT or len(workers()) < 2):
            statuses += pool.map(login, range(8))
    assert len(workers()) == 2, f"one worker took every login attempt: {log.read_text()}"
    assert statuses.count(401) == LOGIN_LIMIT, statuses  # wrong password, within the limit
    assert statuses.count(429) == len(statuses) - LOGIN_LIMIT, statuses


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("hops", [0, 1])
def test_proxy_hops_decides_which_client_address_is_limited(tiny_registry, tmp_path, monkeypatch, hops):
    """Behind PROXY_HOPS proxies the limit is per forwarded client; without it a forged X-Forwarded-For
    changes nothing (every request counts for the address that connected)."""
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    app = serving_app({"MODELS_DIR": str(tiny_registry.root), "RATE_LIMIT_PREDICT": "1 per hour",
                       "PROXY_HOPS": hops})
    client = app.test_client()

    def predict(student):
        return client.post("/api/v1/predict?store=0", data={"image": (io.BytesIO(tiny_png()), "a.png")},
                           environ_base={"REMOTE_ADDR": "10.0.0.254"},  # the proxy
                           headers={"X-Forwarded-For": student, "X-Forwarded-Proto": "https"})

    first = predict("10.0.0.1")
    assert first.status_code == 200
    assert ("Strict-Transport-Security" in first.headers) == bool(hops)  # https as the proxy saw it
    assert predict("10.0.0.2").status_code == (200 if hops else 429)
    assert predict("10.0.0.1").status_code == 429
