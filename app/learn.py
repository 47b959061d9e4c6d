"""Learn: the lesson index (/learn, the suggested path) and the lesson pages (/learn/<slug>) built from
``web/lessons/`` by :mod:`app.lessons`; the demos are ES modules in ``web/static/js/lessons/`` mounted by
``web/static/js/learn.js``. Also ``GET /api/v1/learn/tests``: this repository's tests, read now from
``tests/``, which the CI/CD lesson's exercise checks answers against."""
from __future__ import annotations

import ast
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify, render_template, request

from app import i18n, lessons

bp = Blueprint("learn", __name__)
TESTS_DIR = lessons.REPO / "tests"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    # The navbar lists (endpoint, key) pairs that other parts add; one whose blueprint is not registered
    # (yet, or in this configuration) is skipped instead of breaking every page.
    app.jinja_env.globals["has_endpoint"] = lambda endpoint: endpoint in current_app.view_functions


def concept_names(lang: str) -> dict[str, str]:
    return {key: value[lang] for key, value in lessons.concepts()["concepts"].items()}


@bp.get("/learn")
def index():
    lang = i18n.language()
    return render_template("learn_index.html", lessons=lessons.index(lang), concepts=concept_names(lang))


@bp.get("/learn/<slug>")
def lesson(slug: str):
    lang = i18n.language()
    try:
        shown = lessons.read(slug, lang)
    except (FileNotFoundError, lessons.LessonError) as error:
        problem = str(error) if isinstance(error, lessons.LessonError) else ""
        return render_template("learn_index.html", lessons=lessons.index(lang), concepts=concept_names(lang),
                               missing=slug, problem=problem), 404
    path = lessons.index(lang)
    position = next((number for number, item in enumerate(path) if item.slug == slug), None)
    titles = {item.slug: item.title for item in path}
    return render_template(
        "lesson.html", lesson=shown, concepts=concept_names(lang), titles=titles,
        previous=path[position - 1] if position else None,
        next=path[position + 1] if position is not None and position + 1 < len(path) else None,
        quick=request.args.get("quick") == "1")


def first_line(node: ast.AST) -> str:
    return (ast.get_docstring(node) or "").split("\n")[0]


def summarise_test_file(path: Path) -> dict:
    """One test module: its file, the first line of its docstring and its ``test_*`` functions (name,
    first docstring line, line number)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        tree = ast.Module(body=[], type_ignores=[])
    return {"file": f"tests/{path.name}", "doc": first_line(tree),
            "tests": [{"name": node.name, "doc": first_line(node), "line": node.lineno} for node in tree.body
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")]}


@bp.get("/api/v1/learn/tests")
def tests_list():
    """This repository's test modules and their test functions, read from ``tests/`` at request time
    (empty when the app is installed without its tests)."""
    paths = sorted(TESTS_DIR.glob("test_*.py")) if TESTS_DIR.is_dir() else []
    return jsonify(modules=[summarise_test_file(path) for path in paths])
