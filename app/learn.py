"""Learn: the lesson index (/learn, the suggested path) and the lesson pages (/learn/<slug>) built from
``web/lessons/`` by :mod:`app.lessons`; the demos are ES modules in ``web/static/js/lessons/`` mounted by
``web/static/js/learn.js``. Two endpoints for lessons of this module: ``GET /api/v1/learn/garments``, real
Fashion-MNIST photos of two classes (the first lesson trains a classifier on them in the browser), and
``GET /api/v1/learn/tests``, this repository's tests read now from ``tests/``, which the CI/CD lesson's
exercise checks answers against, with ``GET /api/v1/learn/ci``, the project's own CI workflow and script."""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import numpy as np
import yaml
from flask import Blueprint, Flask, current_app, jsonify, render_template

from app import i18n, lesson_data, lessons, params
from app.errors import ApiError
from models.real_data import FASHION_MNIST_CLASSES

bp = Blueprint("learn", __name__)
TESTS_DIR = lessons.REPO / "tests"
WORKFLOW = lessons.REPO / ".github" / "workflows" / "ci.yml"
CI_SCRIPT = lessons.REPO / ".ci" / "run"


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
        next=path[position + 1] if position is not None and position + 1 < len(path) else None)


@bp.get("/api/v1/learn/garments")
def garments():
    """Real Fashion-MNIST photos of two classes (``classes=sneaker,bag``): ``count`` per class from the
    training file to learn from and ``test`` per class from the test file to predict, as 28×28 grey pixels
    (base64, row-major) with their labels (0 = first class, 1 = second)."""
    raw = params.text("classes", "sneaker,bag")
    classes = raw.split(",")
    if len(classes) != 2 or classes[0] == classes[1] or not set(classes) <= set(FASHION_MNIST_CLASSES):
        raise ApiError(400, "bad_param", name="classes", value=raw[:80])
    count, test = params.integer("count", 30, 2, 100), params.integer("test", 20, 1, 100)
    indices = [FASHION_MNIST_CLASSES.index(name) for name in classes]
    answer = {"classes": classes}
    for part, source, per_class in (("train", "train", count), ("test", "test", test)):
        images, labels = lesson_data.fashion_rows(source)
        order = np.stack([np.flatnonzero(labels == index)[:per_class] for index in indices], axis=1).reshape(-1)
        answer[part] = {"pixels": lesson_data.encoded(images[order]),  # the two classes alternate
                        "labels": (labels[order] == indices[1]).astype(int).tolist()}
    return jsonify(answer)


def first_line(node: ast.AST) -> str:
    return (ast.get_docstring(node) or "").split("\n")[0]


def summarise_test_file(path: Path) -> dict:
    """One test module: its file, the first line of its docstring and its ``test_*`` functions (name,
    first docstring line, line number); parsed again whenever the file changes."""
    return _summary(path, path.stat().st_mtime)


@functools.lru_cache(maxsize=512)
def _summary(path: Path, mtime: float) -> dict:
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


def ci_pipeline() -> dict:
    """The CI workflow (.github/workflows/ci.yml) as the lesson draws it: triggers, and per job its runner,
    the jobs it needs, its condition and its step names; plus the commands of .ci/run."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    jobs = [{"id": name, "runs_on": job.get("runs-on", ""), "needs": [job["needs"]] if isinstance(job.get("needs"), str)
             else job.get("needs", []), "if": job.get("if", ""), "timeout_minutes": job.get("timeout-minutes"),
             "steps": [step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0] for step in job.get("steps", [])]}
            for name, job in workflow["jobs"].items()]
    commands = [line for line in CI_SCRIPT.read_text(encoding="utf-8").split("\n")
                if line.strip() and not line.startswith("#")]
    return {"file": WORKFLOW.relative_to(lessons.REPO).as_posix(), "triggers": list(triggers or []), "jobs": jobs,
            "script": {"file": CI_SCRIPT.relative_to(lessons.REPO).as_posix(), "commands": commands}}


@bp.get("/api/v1/learn/ci")
def ci():
    """This project's CI: what runs on every push and pull request, and what only after the tests pass."""
    if not WORKFLOW.is_file() or not CI_SCRIPT.is_file():
        raise ApiError(404, "learn_ci_missing")
    try:
        return jsonify(ci_pipeline())
    except (yaml.YAMLError, KeyError, TypeError, AttributeError):
        raise ApiError(404, "learn_ci_missing") from None
