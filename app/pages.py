"""HTML pages: Analyze, Network, Models (templates + JS modules in web/), and the service worker at /."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory

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
    """The service worker must come from / to control every page; never cached so updates arrive."""
    response = send_from_directory(current_app.static_folder, "sw.js", mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


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
