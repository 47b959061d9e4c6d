"""Web security through the real app: headers and CSP, CSRF, login with hashed passwords, admin-only
endpoints, cookies in production, rate limits, readiness, and the gunicorn settings."""
from __future__ import annotations

import io
import re
import runpy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app import create_app, prepare
from app.auth import User
from app.db import db
from cli.main import main as riim
from tests.conftest import ADMIN, serving_app

# Endpoints that change state without an admin login, each for a stated reason.
PUBLIC_WRITES = {
    "api.predict": "public JSON API: CSRF-exempt, rate-limited, changes no admin state",
    "api.feature_maps": "public analysis of the caller's image: rate-limited, stores nothing",
    "digits.predict": "public digit recognition: CSRF-exempt, rate-limited, stores nothing",
    "generative.reconstruct": "public autoencoder reconstruction of the caller's image: stores nothing",
    "generative.gan_sample": "public GAN samples: stores nothing",
    "lesson_models.pruning_photo": "public lesson demo on the caller's image: stores nothing",
    "lesson_models.formats": "public lesson demo on the caller's image: stores nothing",
    "dl.predict_price": "public forecast of the caller's sequence: stores nothing",
    "dl.detect_anomalies": "public anomaly scores of the caller's series: stores nothing",
    "lab.predict": "public prediction by a lab model: stores nothing",
    "lesson_data.embeddings": "public lesson demo on the caller's images: stores nothing",
    "lesson_data.augment": "public lesson demo on the caller's image: stores nothing",
    "auth.login": "the way to become an admin (CSRF-protected, rate-limited)",
    "auth.logout": "ends the caller's own session",
}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


def test_pages_send_strict_csp_and_no_inline_code(client):
    for rule in client.application.url_map.iter_rules():
        if "GET" not in rule.methods or rule.arguments or not rule.endpoint.startswith("pages."):
            continue
        response = client.get(rule.rule)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self' 'wasm-unsafe-eval';" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        if response.mimetype != "text/html":
            continue
        html = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script in {rule.rule}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler in {rule.rule}"
        assert not re.search(r"\sstyle\s*=", html), f"inline style attribute in {rule.rule} (CSP style-src 'self')"
        assert re.search(r'<meta name="csrf-token" content="[^"]+">', html)


def test_every_state_changing_endpoint_needs_an_admin(client):
    """Without a login, every POST/PUT/PATCH/DELETE route answers 401 (CSRF token given), except the
    listed public ones."""
    token = client.get("/api/v1/auth/me").json["csrf_token"]
    checked = 0
    for rule in client.application.url_map.iter_rules():
        methods = rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
        if not methods or rule.endpoint in PUBLIC_WRITES:
            continue
        url = rule.rule
        for argument in rule.arguments:
            value = "a" * 64 if argument == "sha256" else "animals"
            url = re.sub(rf"<(?:([a-z]+):)?{argument}>", lambda m, v=value: "1" if m.group(1) == "int" else v, url)
        for method in methods:
            response = client.open(url, method=method, headers={"X-CSRFToken": token}, json={})
            assert response.status_code == 401, f"{method} {url}: {response.status_code}"
            assert response.json["error"]["code"] == "login_required"
            checked += 1
    assert checked >= 3  # promote, rollback, delete upload at least


def test_csrf_is_required_from_a_session_but_predict_stays_open_to_curl(admin_client, photos):
    token = admin_client.environ_base.pop("HTTP_X_CSRFTOKEN")
    response = admin_client.delete("/api/v1/uploads/" + "0" * 64)
    assert response.status_code == 400 and response.json["error"]["code"] == "csrf_failed"
    assert admin_client.delete("/api/v1/uploads/" + "0" * 64, headers={"X-CSRFToken": token}).status_code == 404
    data = {"image": (io.BytesIO(photos["skimage/chelsea"].png_bytes()), "cat.png")}
    response = admin_client.post("/api/v1/predict", data=data, content_type="multipart/form-data")
    assert response.status_code == 200  # no token: the exempt public API (as curl -F image=@cat.png)


def test_users_create_stores_a_hash_and_login_works(app, client):
    runner = CliRunner()
    result = runner.invoke(riim, ["users", "create", "teacher"], input="correct horse\ncorrect horse\n")
    assert result.exit_code == 0, result.output
    assert "correct horse" not in result.output
    again = runner.invoke(riim, ["users", "create", "teacher", "--password", "another-one"])
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(riim, ["users", "create", "pupil", "--password", "short"])
    assert short.exit_code != 0 and "at least" in short.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "teacher"))
        assert user.is_admin and user.password_hash.startswith("scrypt:") and "correct" not in user.password_hash
    token = client.get("/api/v1/auth/me").json["csrf_token"]
    response = client.post("/api/v1/auth/login", data={"username": "teacher", "password": "correct horse"},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.json["user"] == {"username": "teacher", "is_admin": True}
    assert client.get("/api/v1/auth/me").json["user"]["username"] == "teacher"
    new_token = response.json["csrf_token"]
    assert client.post("/api/v1/auth/logout", headers={"X-CSRFToken": new_token}).status_code == 200
    assert client.get("/api/v1/auth/me").json["user"] is None


def test_production_cookies_are_secure_httponly_samesite(tiny_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("RIIM_SECRET_KEY", "a-long-random-secret-from-the-environment")
    monkeypatch.setenv("RIIM_MODELS_DIR", str(tiny_registry.root))
    app = create_app("production")
    prepare(app)  # what the gunicorn master runs once
    from app.auth import create_user

    with app.app_context():
        create_user(**ADMIN)
    client = app.test_client()
    token = client.get("/api/v1/auth/me", base_url="https://localhost").json["csrf_token"]
    response = client.post("/api/v1/auth/login", json=ADMIN, base_url="https://localhost",
                           headers={"X-CSRFToken": token, "Referer": "https://localhost/"})
    assert response.status_code == 200, response.json
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_rate_limit_is_per_client(tiny_registry, tmp_path, monkeypatch, photos):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    app = serving_app({"MODELS_DIR": str(tiny_registry.root), "RATE_LIMIT_PREDICT": "2 per minute"})
    client = app.test_client()

    def predict(address):
        data = {"image": (io.BytesIO(photos["skimage/coffee"].png_bytes()), "coffee.png")}
        return client.post("/api/v1/predict?store=0", data=data, content_type="multipart/form-data",
                           environ_base={"REMOTE_ADDR": address})

    assert [predict("10.0.0.1").status_code for _ in range(2)] == [200, 200]
    refused = predict("10.0.0.1")
    assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    assert predict("10.0.0.2").status_code == 200  # another student is not affected


def test_readiness_reports_the_loaded_model(client, tmp_path, monkeypatch):
    response = client.get("/api/v1/ready")
    assert response.status_code == 200 and response.json["model"]["name"] == "animals"
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "empty-instance"))
    empty = serving_app({"MODELS_DIR": str(tmp_path / "no-models")}).test_client().get("/api/v1/ready")
    assert empty.status_code == 503 and empty.json["error"]["code"] == "model_unavailable"


def test_gunicorn_settings(monkeypatch):
    monkeypatch.delenv("RIIM_WORKERS", raising=False)
    settings = runpy.run_path(str(REPO / "app" / "gunicorn.conf.py"))
    import os

    assert settings["workers"] == os.cpu_count()  # one per core: measured by benchmarks/bench_http.py
    assert settings["preload_app"] is False  # ONNX Runtime sessions are created in each worker
    assert settings["wsgi_app"] == "app:create_app()"
    monkeypatch.setenv("RIIM_WORKERS", "3")
    assert runpy.run_path(str(REPO / "app" / "gunicorn.conf.py"))["workers"] == 3
