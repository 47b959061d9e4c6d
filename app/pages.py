"""HTML pages: Analyze, Network, Models (templates + JS modules in web/), and the service worker at /."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, request, send_from_directory

from app.api import class_model

bp = Blueprint("pages", __name__)


@bp.get("/")
def analyze():
    return render_template("analyze.html", class_model=class_model())


@bp.get("/network")
def network():
    return render_template("network.html", class_model=class_model())


@bp.get("/models")
def models():
    return render_template("models.html")


@bp.get("/sw.js")
def service_worker():
    """The service worker must come from / to control every page; never cached so updates arrive. It names
    the static files' version (their content hash), under which it caches them: a change to any of them
    installs a new worker, whose cache replaces the old one."""
    folder = Path(current_app.static_folder)
    source = (folder / "sw.js").read_text(encoding="utf-8")
    version = static_version(folder, tuple((path, path.stat().st_size, path.stat().st_mtime_ns)
                                           for path in sorted(folder.rglob("*")) if path.is_file()))
    response = current_app.response_class(source.replace(SW_VERSION, f'const VERSION = "{version}";', 1),
                                          mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.set_etag(version)
    return response.make_conditional(request)


SW_VERSION = 'const VERSION = "unversioned";'


@functools.lru_cache(maxsize=4)
def static_version(folder: Path, files: tuple) -> str:
    """The first 16 hex digits of the sha256 of FILES ((path, size, mtime) under FOLDER): names and contents.
    Sizes and modification times are in the cache key only, so that an edited file is hashed again."""
    digest = hashlib.sha256()
    for path, _, _ in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico whatever the page says: the SVG icon of web/static."""
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


IMAGENET_NAMES = Path(__file__).resolve().parent.parent / "models"


@bp.get("/imagenet-labels.<lang>.json")
def imagenet_names(lang: str):
    """The 1,000 ImageNet class names in a page language, in the order of the tags' ``index``
    (models/imagenet_labels.json; Spanish: models/imagenet_labels_es.json)."""
    files = {"en": "imagenet_labels.json", "es": "imagenet_labels_es.json"}
    if lang not in files:
        abort(404)
    return send_from_directory(IMAGENET_NAMES, files[lang], mimetype="application/json", max_age=86400)
