"""HTML pages (the UI grows in later issues; each page is a template plus a vendored JS module)."""
from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def analyze():
    return render_template("analyze.html")
