"""The pages and the JSON the pages read: strict-CSP HTML, the service worker's shell list, version cards,
card-listed files only (sha256-checked, long-cached) and admin promote/rollback on a two-version registry of
the tiny model (tests/tiny_model.py)."""
from __future__ import annotations

import io
import json
import re
import shutil

import pytest

from app.pages import static_version
from models.registry import Registry
from tests import tiny_model
from tests.conftest import serving_app

YEAR = 365 * 24 * 3600


@pytest.fixture(scope="module")
def two_versions(tiny_registry, tmp_path_factory):
    """A copy of the tiny model's registry with a second version (same files) that is not promoted."""
    registry = Registry(tmp_path_factory.mktemp("two-versions") / "store")
    shutil.copytree(tiny_registry.root, registry.root)
    source = registry.path("animals", "v1")
    card = registry.card("animals", "v1")
    card = {key: value for key, value in card.items() if key not in ("name", "version", "created")}
    with registry.publish("animals", {**card, "files": {}}, promote=False) as draft:
        for fmt, entry in card["files"].items():
            shutil.copy(source / entry["path"], draft.dir / entry["path"])
            draft.card["files"][fmt] = entry["path"]
    return registry


@pytest.fixture
def app(two_versions, tmp_path, monkeypatch):
    registry = Registry(tmp_path / "store")
    shutil.copytree(two_versions.root, registry.root)
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    return serving_app({"MODELS_DIR": str(registry.root)})


@pytest.mark.parametrize("path", ["/", "/network", "/models"])
def test_pages_are_strict_csp_and_bilingual(client, path):
    spanish = client.get(path, headers={"Accept-Language": "es"})
    assert spanish.status_code == 200 and "script-src 'self'" in spanish.headers["Content-Security-Policy"]
    html = spanish.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\sstyle=", html) and not re.search(r"\son[a-z]+=", html), "inline style or handler"
    assert '<meta name="csrf-token" content="' in html and 'lang="es"' in html and "Analizar" in html
    english = client.get(path + "?lang=en").get_data(as_text=True)
    assert 'lang="en"' in english and "Analyze" in english and "Analizar" not in english


def test_service_worker_is_served_from_root_and_its_shell_exists(client):
    response = client.get("/sw.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", response.get_data(as_text=True), re.S).group(1)
                       .replace(",\n]", "\n]"))
    assert "/" in shell and "/static/js/analyze.js" in shell
    for url in shell:
        assert client.get(url).status_code == 200, url
    assert worker_modules(client, "/static/js/edge-worker.js") <= set(shell)  # the browser model works offline


def test_service_worker_names_the_static_files_version(client, tmp_path):
    """The worker caches /static/ under the files' content hash: a new hash when a file changes, 304 if not."""
    response = client.get("/sw.js")
    version = re.search(r'^const VERSION = "([0-9a-f]{16})";$', response.get_data(as_text=True), re.M).group(1)
    assert "unversioned" not in response.get_data(as_text=True)
    assert client.get("/sw.js", headers={"If-None-Match": f'"{version}"'}).status_code == 304
    module = tmp_path / "a.js"
    module.write_text("export const a = 1;\n")
    before = static_version(tmp_path, ((module, module.stat().st_size, module.stat().st_mtime_ns),))
    module.write_text("export const a = 10;\n")  # another size: two writes can share a modification time
    assert static_version(tmp_path, ((module, module.stat().st_size, module.stat().st_mtime_ns),)) != before


def worker_modules(client, url: str) -> set[str]:
    """URL and every module it imports statically, recursively (what its Web Worker needs to start)."""
    found, todo = set(), [url]
    while todo:
        module = todo.pop()
        found.add(module)
        source = client.get(module).get_data(as_text=True)
        base = module.rsplit("/", 1)[0]
        for path in re.findall(r'^import\s(?:[^"]*?\sfrom\s)?"(\.{1,2}/[^"]+)";', source, re.M | re.S):
            parts = (base + "/" + path).split("/")
            resolved = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            todo.extend({"/".join(resolved)} - found)
    return found


def test_a_relative_models_dir_serves_version_files(app, monkeypatch, tmp_path):
    """Flask resolves relative file paths against the app package: the registry keeps an absolute root."""
    monkeypatch.chdir(tmp_path)
    client = serving_app({"MODELS_DIR": "store"}).test_client()
    response = client.get("/api/v1/models/animals/versions/v1/files/imagenet_labels.json")
    assert response.status_code == 200 and response.get_json()[281] == "tabby"


def test_model_versions_and_cards(client):
    body = client.get("/api/v1/models/animals").get_json()
    assert body["current"] == "v1" and body["history"] == ["v1"]
    assert [card["version"] for card in body["versions"]] == ["v2", "v1"]
    card = client.get("/api/v1/models/animals/versions/v2").get_json()
    assert card["labels"] == ["cat", "dog"] and card["input"]["size"] == tiny_model.SIZE
    missing = client.get("/api/v1/models/animals/versions/v9")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "unknown_version"
    assert client.get("/api/v1/models/nothing").status_code == 404


def test_only_card_listed_files_are_served_and_cached_for_a_year(client, app):
    registry = Registry(app.config["MODELS_DIR"])
    labels = client.get("/api/v1/models/animals/versions/v1/files/imagenet_labels.json")
    assert labels.status_code == 200 and labels.cache_control.max_age == YEAR
    assert labels.data == (registry.path("animals", "v1") / "imagenet_labels.json").read_bytes()
    for path in ("card.json", "../current.json", "..%2Fcurrent.json", "nothing.bin"):
        response = client.get(f"/api/v1/models/animals/versions/v1/files/{path}")
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] in ("unknown_file", "not_found")


def test_a_corrupted_file_is_refused(client, app):
    path = Registry(app.config["MODELS_DIR"]).path("animals", "v2") / "imagenet_labels.json"
    path.chmod(0o644)
    path.write_text(path.read_text().replace("tabby", "tabbY"))
    response = client.get("/api/v1/models/animals/versions/v2/files/imagenet_labels.json")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "model_unavailable"


def test_promote_and_rollback_need_an_admin(client):
    token = client.get("/api/v1/auth/me").get_json()["csrf_token"]
    response = client.post("/api/v1/models/animals/promote", json={"version": "v2"}, headers={"X-CSRFToken": token})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "login_required"
    assert client.post("/api/v1/models/animals/rollback", headers={"X-CSRFToken": token}).status_code == 401
    assert client.post("/api/v1/models/animals/promote", json={"version": "v2"}).status_code == 400  # no CSRF


def test_promote_switches_serving_and_rollback_returns(admin_client, photos):
    def served_version():
        image = {"image": [(io.BytesIO(photos["skimage/chelsea"].png_bytes()), "chelsea.png")]}
        return admin_client.post("/api/v1/predict?store=0", data=image).get_json()["model"]["version"]

    assert served_version() == "v1"
    promoted = admin_client.post("/api/v1/models/animals/promote", json={"version": "v2"})
    assert promoted.status_code == 200 and promoted.get_json()["version"] == "v2"
    assert served_version() == "v2"
    rolled = admin_client.post("/api/v1/models/animals/rollback")
    assert rolled.get_json() == {"name": "animals", "version": "v1", "history": ["v1"]}
    assert served_version() == "v1"
    again = admin_client.post("/api/v1/models/animals/rollback")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "no_rollback"
    assert admin_client.post("/api/v1/models/animals/promote", json={}).status_code == 400
    assert admin_client.post("/api/v1/models/animals/promote", json={"version": "v7"}).status_code == 404
