"""HTML pages: Analyze, Network, Models (templates + JS modules in web/), and the service worker at /."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, send_from_directory

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
