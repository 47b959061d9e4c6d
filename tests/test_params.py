"""Strict parameter and body parsing: malformed input is a 4xx JSON error, never a 500 — checked for the
confirmed holes and by walking every operation of the OpenAPI description with malformed input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image

from app import params
from app.db import db
from app.errors import ApiError
from app.labelling import Project
from tests.conftest import ADMIN
from tests.test_hostile import encode, image_part, post

OPENAPI = json.loads(Path(params.__file__).with_name("openapi.json").read_text())
NESTED = "[" * 100_000 + "]" * 100_000  # RecursionError in json.loads


@pytest.fixture
def serving_registry(tiny_registry):
    """Nothing here depends on what the network sees: the tiny model (tests/tiny_model.py) serves."""
    return tiny_registry


# --- the helper ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["²", "٣", "1²", "", " 1", "+1", "-1", "1.0", "0x10", "1_000", "9" * 4400, "51"])
def test_integers_are_ascii_digits_in_range(raw):
    assert params.as_int(raw, 0, 50) is None


@pytest.mark.parametrize("raw, value", [("0", 0), ("007", 7), ("50", 50)])
def test_valid_integers(raw, value):
    assert params.as_int(raw, 0, 50) == value


def test_parameters_have_a_bounded_length():
    app = Flask(__name__)
    with app.test_request_context("/?x=" + "a" * (params.MAX_LENGTH + 1) + "&y=1&z=YES"):
        with pytest.raises(ApiError):
            params.text("x")
        assert params.integer("y", 5, 0, 9) == 1 and params.integer("missing", 5, 0, 9) == 5
        assert params.flag("z", False) is True and params.choice("w", ("a", "b")) == "a"


def test_json_depth_is_measured_without_recursion():
    assert params.depth(1) == 0 and params.depth({"a": [1, {"b": []}]}) == 4
    deep = []
    for _ in range(50_000):
        deep = [deep]
    assert params.depth(deep) == 50_001


# --- the confirmed anonymous 500s ---------------------------------------------------------------------

def encode_png() -> bytes:
    return encode(Image.new("RGB", (48, 48), (200, 60, 30)), "PNG")


def csrf(client) -> dict:
    return {"X-CSRFToken": client.get("/api/v1/auth/me").json["csrf_token"]}


@pytest.mark.parametrize("value", ["²", "9" * 4400, "١٢"])
def test_class_parameter_is_parsed_strictly(client, value):
    """``?explain=1&class=²`` and a 4,400-digit class were 500s."""
    response = post(client, image_part(encode_png()), query=f"?explain=1&store=0&class={value}")
    assert response.status_code == 400 and response.json["error"]["code"] in ("unknown_class", "bad_param")


def test_class_index_still_works(client):
    response = post(client, image_part(encode_png()), query="?explain=1&store=0&class=281")
    assert response.status_code == 200, response.json


def test_deeply_nested_json_login_is_a_400(client):
    """A RecursionError (500) before."""
    response = client.post("/api/v1/auth/login", data=NESTED, content_type="application/json", headers=csrf(client))
    assert response.status_code == 400 and response.json["error"]["code"] == "json_too_deep"
    assert "32" in response.json["error"]["message"]


def test_json_bodies_have_a_size_limit(client):
    body = json.dumps({"username": "x" * (300 * 1024), "password": "y"})
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json", headers=csrf(client))
    assert response.status_code == 413 and response.json["error"]["code"] == "json_too_large"


def test_ordinary_json_still_parses(admin_client):
    assert admin_client.get("/api/v1/auth/me").json["user"]["username"] == ADMIN["username"]
    response = admin_client.post("/api/v1/labelling/projects", json={"name": "pets", "classes": ["cat", "dog"]})
    assert response.status_code == 201, response.json


@pytest.mark.parametrize("query", ["limit=²", "limit=" + "9" * 4400, "offset=٣", "limit=0", "limit=501"])
def test_labelling_queue_parameters_are_strict(admin_client, query):
    """``limit=²`` was a 500 (``"²".isdigit()`` is true, ``int("²")`` fails)."""
    with admin_client.application.app_context():
        db.session.add(Project(name="pets", classes=["cat", "dog"]))
        db.session.commit()
    response = admin_client.get(f"/api/v1/labelling/projects/pets/queue?{query}")
    assert response.status_code == 400 and response.json["error"]["code"] == "bad_param"


def test_clusters_k_is_strict(admin_client):
    with admin_client.application.app_context():
        db.session.add(Project(name="pets", classes=["cat", "dog"]))
        db.session.commit()
    route = next(route for route in OPENAPI["paths"] if route.endswith("/clusters"))
    for method in OPENAPI["paths"][route]:
        response = admin_client.open(route.replace("{name}", "pets") + "?k=²", method=method.upper())
        assert response.status_code == 400 and response.json["error"]["code"] == "bad_param"


# --- 405 carries Allow -------------------------------------------------------------------------------

def test_method_not_allowed_says_which_are(client):
    response = client.get("/api/v1/predict")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"POST", "OPTIONS"}
    response = client.delete("/api/v1/auth/me")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]


# --- every operation of the OpenAPI description, malformed ----------------------------------------

HOSTILE_VALUES = ["²", "9" * 4400, "", "-1", "%00", "%FF%FE", "a" * 5000, "[]", "../../etc/passwd", "1e309"]
HOSTILE_BODIES = [
    ("application/json", NESTED),
    ("application/json", "{"),
    ("application/json", "[1, 2]"),
    ("application/json", '{"name": {"a": []}, "classes": 7, "items": "x", "version": 1e999, "project": []}'),
    ("application/json", json.dumps({"x": "a" * (300 * 1024)})),
    ("multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\x00\r\n--zz--"),
    ("multipart/form-data", "no boundary"),
    ("application/x-www-form-urlencoded", "a=%ZZ&&=&" + "b" * 1000),
    ("text/plain", "\xff\xfe"),
]


def operations():
    for route, methods in OPENAPI["paths"].items():
        for method, operation in methods.items():
            if method in ("get", "post", "put", "delete", "patch"):
                yield route, method, [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]


def test_the_walk_covers_every_operation():
    assert len(list(operations())) >= 30


@pytest.mark.parametrize("route, method, query", list(operations()), ids=lambda v: v if isinstance(v, str) else None)
def test_malformed_input_never_gets_a_5xx(admin_client, route, method, query):
    """Every path parameter, declared query parameter and body replaced by malformed values, as an admin
    with a CSRF token so that protected operations parse their input too."""
    statuses = []
    for value in HOSTILE_VALUES:
        path = re.sub(r"\{[^}]+\}", value.replace("/", "%2F") or "x", route)
        url = path + "?" + "&".join(f"{name}={value}" for name in query + ["lang", "store"])
        statuses.append((url[:120], admin_client.open(url, method=method.upper()).status_code))
    for content_type, body in HOSTILE_BODIES:
        response = admin_client.open(re.sub(r"\{[^}]+\}", "x", route), method=method.upper(), data=body,
                                     content_type=content_type)
        statuses.append((content_type, response.status_code))
        assert response.status_code >= 500 or response.status_code < 300 or response.is_json
    assert all(status < 500 for _, status in statuses), [entry for entry in statuses if entry[1] >= 500]
