"""Cross-site safety of the CSRF-exempt predict API: any page a student opens may POST to it, so a
cross-site request gets its classification but is never stored; the Analyze page (same origin) stores as
before; scripts and curl store only with a logged-in session or an API token (``riim tokens``)."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select, text

from app.db import Prediction, db
from app.storage import Upload
from app.tokens import ApiToken, create_token
from cli.main import main as riim
from tests.conftest import serving_app

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


@pytest.fixture
def token(app):
    with app.app_context():
        return create_token("notebook")


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (seed % 256, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def predict(client, content: bytes, query: str = "", **headers):
    return client.post(f"/api/v1/predict{query}", data={"image": (io.BytesIO(content), "photo.png")},
                       content_type="multipart/form-data", headers=headers)


def stored(app, content: bytes) -> bool:
    with app.app_context():
        sha256 = hashlib.sha256(content).hexdigest()
        return db.session.scalar(select(Upload).where(Upload.sha256 == sha256)) is not None


CROSS_SITE = {
    "another site (Origin)": {"Origin": "https://games.example"},
    "another site (Sec-Fetch-Site)": {"Sec-Fetch-Site": "cross-site"},
    "a sibling site": {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
    "a sandboxed frame or file:// page": {"Origin": "null"},
    "a forged Origin from another site": {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
}


@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
def test_a_cross_site_request_is_classified_but_never_stored(app, client, headers):
    content = png(1)
    for query in ("", "?store=1"):
        response = predict(client, content, query, **headers)
        assert response.status_code == 200, response.json
        assert response.json["results"][0]["label"] and response.json["stored"] is False
        assert response.json["notice"]
    assert not stored(app, content)
    assert not list(Path(app.instance_path).rglob(f"{hashlib.sha256(content).hexdigest()}.*"))  # no file either


def test_a_cross_site_request_is_not_stored_even_with_a_session_or_a_token(app, admin_client, token):
    content = png(2)
    response = predict(admin_client, content, Authorization=f"Bearer {token}", Origin="https://games.example")
    assert response.status_code == 200 and response.json["stored"] is False
    assert not stored(app, content)


def test_the_analyze_page_stores_as_before(app, client):
    """The page's fetch (same origin) is anonymous and keeps its image; store=0 still opts out."""
    for number, headers in enumerate((SAME_ORIGIN, {"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://localhost"})):
        content = png(10 + number)
        response = predict(client, content, **headers)
        assert response.status_code == 200 and response.json["stored"] is True and "notice" not in response.json
        assert stored(app, content)
    content = png(20)
    assert predict(client, content, "?store=0", **SAME_ORIGIN).json["stored"] is False
    assert not stored(app, content)


def test_curl_without_credentials_is_classified_but_not_stored(app, client):
    content = png(30)
    for query in ("", "?store=1"):
        response = predict(client, content, query)
        assert response.status_code == 200 and response.json["stored"] is False
        assert "riim" not in response.json["notice"] and "Bearer" in response.json["notice"]
    assert not stored(app, content)
    with app.app_context():  # the answer itself is still recorded
        assert db.session.scalar(select(Prediction).where(
            Prediction.image_sha256 == hashlib.sha256(content).hexdigest())) is not None


def test_a_script_stores_with_a_logged_in_session(app, admin_client):
    content = png(40)
    assert predict(admin_client, content).json["stored"] is True
    assert stored(app, content)


def test_a_script_stores_with_an_api_token(app, client, token):
    content = png(50)
    response = predict(client, content, Authorization=f"Bearer {token}")
    assert response.status_code == 200 and response.json["stored"] is True
    assert stored(app, content)
    with app.app_context():
        row = db.session.scalar(select(ApiToken).where(ApiToken.name == "notebook"))
        assert row.last_used is not None and token not in row.token_sha256
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize("header", ["Bearer riim_" + "A" * 43, "Bearer not-a-token", "Basic dXNlcjpwYXNz",
                                    "Bearer "])
def test_a_bad_token_is_refused(app, client, token, header):
    response = predict(client, png(60), Authorization=header, **SAME_ORIGIN)
    assert response.status_code == 401 and response.json["error"]["code"] == "bad_token"
    assert "riim tokens create" in predict(client, png(60), "?lang=en", Authorization=header).json["error"]["message"]


def test_tokens_command_line_create_list_revoke(app, client):
    runner = CliRunner()
    created = runner.invoke(riim, ["tokens", "create", "class-notebook"])
    assert created.exit_code == 0, created.output
    token = next(word for word in created.output.split() if word.startswith("riim_"))
    assert runner.invoke(riim, ["tokens", "create", "class-notebook"]).exit_code != 0  # names are unique
    assert runner.invoke(riim, ["tokens", "create", "bad name!"]).exit_code != 0
    with app.app_context():  # only the hash is kept
        dump = "\n".join(str(row) for row in db.session.execute(text("SELECT * FROM api_token")))
        assert token not in dump and token[5:] not in dump
    content = png(70)
    assert predict(client, content, Authorization=f"Bearer {token}").json["stored"] is True
    listing = runner.invoke(riim, ["tokens", "list"])
    assert listing.exit_code == 0 and "class-notebook" in listing.output and token not in listing.output
    assert "last used never" not in listing.output
    revoked = runner.invoke(riim, ["tokens", "revoke", "class-notebook"])
    assert revoked.exit_code == 0, revoked.output
    assert predict(client, png(71), Authorization=f"Bearer {token}").status_code == 401
    assert runner.invoke(riim, ["tokens", "revoke", "class-notebook"]).exit_code != 0
    assert "class-notebook" not in runner.invoke(riim, ["tokens", "list"]).output


def test_behind_a_proxy_the_page_origin_is_the_public_one(tiny_registry, tmp_path, monkeypatch):
    """A browser without Sec-Fetch-Site sends only Origin: with PROXY_HOPS the server's origin is the one
    the proxy forwards (X-Forwarded-Proto/-Host), so the page's uploads are stored and other sites' are not."""
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    app = serving_app({"MODELS_DIR": str(tiny_registry.root), "PROXY_HOPS": 1})
    client = app.test_client()
    forwarded = {"X-Forwarded-For": "10.0.0.7", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "riim.school.example"}
    page, other = png(80), png(81)
    assert predict(client, page, **forwarded, Origin="https://riim.school.example").json["stored"] is True
    assert predict(client, other, **forwarded, Origin="http://localhost").json["stored"] is False
    assert stored(app, page) and not stored(app, other)


def test_openapi_describes_the_token_and_the_new_answers(client, token):
    import jsonschema

    spec = client.get("/api/v1/openapi.json").json
    assert spec["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    operation = spec["paths"]["/api/v1/predict"]["post"]
    assert {"apiToken": []} in operation["security"] and {} in operation["security"]
    assert "401" in operation["responses"]
    answer = {"$ref": "#/components/schemas/PredictResponse", "components": spec["components"]}
    for headers in ({"Authorization": f"Bearer {token}"}, {"Origin": "https://games.example"}):
        jsonschema.validate(predict(client, png(90), **headers).json, answer)


# The browser sends the headers itself: the same upload from a page of the app and from a page of another
# origin (another port of 127.0.0.1: same-site, not same-origin), by a real Chromium.
UPLOAD_JS = """async ({url, bytes, mode}) => {
  const form = new FormData();
  form.append("image", new Blob([new Uint8Array(bytes)], {type: "image/png"}), "page.png");
  const response = await fetch(url, {method: "POST", body: form, mode});
  return mode === "no-cors" ? null : (await response.json()).stored;
}"""


def test_a_real_browser_stores_from_the_app_page_but_not_from_another_page(app):
    from flask import Flask

    from tests.browser_support import chromium, guard_loopback, live_server

    other_site = Flask("other_site")
    other_site.add_url_rule("/", "index", lambda: "<!doctype html><title>a game</title>")
    page_image, other_image = png(100), png(101)
    with live_server(app) as app_url, live_server(other_site) as other_url, chromium() as browser:
        context = browser.new_context()
        outside = guard_loopback(context)
        page = context.new_page()
        page.goto(app_url + "/")
        assert page.evaluate(UPLOAD_JS, {"url": "/api/v1/predict", "bytes": list(page_image), "mode": "cors"})
        page.goto(other_url + "/")  # a form-like cross-site POST: no preflight, the answer is opaque
        page.evaluate(UPLOAD_JS, {"url": app_url + "/api/v1/predict", "bytes": list(other_image), "mode": "no-cors"})
        context.close()
    assert not outside
    with app.app_context():
        answered = db.session.scalar(select(Prediction).where(
            Prediction.image_sha256 == hashlib.sha256(other_image).hexdigest()))
    assert stored(app, page_image) and answered is not None and not stored(app, other_image)
