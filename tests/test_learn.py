"""Lessons (web/lessons/, docs/lessons.md): every lesson file is valid in both languages, the concepts the issues
ask for have lessons, the code excerpts resolve in this repository, and the pages render (es/en, 404 for an
unknown slug, raw HTML in Markdown escaped). No model needed: the app serves the tiny registry."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from markupsafe import escape

from app import lessons
from app.i18n import CATALOGUE
from app.learn import summarise_test_file
from tests.conftest import serving_app

KEYS = set(json.loads(CATALOGUE.read_text(encoding="utf-8")))
SLUGS = lessons.slugs()


@pytest.fixture(scope="module")
def app(tiny_registry, tmp_path_factory):
    """One app for the module (the pages need no real model)."""
    instance = tmp_path_factory.mktemp("learn-instance")
    return serving_app({"MODELS_DIR": str(tiny_registry.root), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'riim.sqlite3'}"})


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.mark.parametrize("slug", SLUGS)
def test_lesson_is_valid_in_both_languages(slug):
    """Front matter keys and types, four sections, es/en invariants, demo modules, prerequisites, code excerpts,
    'what it is' at most 400 words, no link leaving the app."""
    assert lessons.problems(slug) == []


def test_lessons_form_a_path_and_concepts_yaml_is_sound():
    assert lessons.all_problems() == []
    orders = [lessons.read(slug, "es").order for slug in SLUGS]
    assert len(orders) == len(set(orders)), "two lessons share an 'order'"


def test_every_required_concept_has_a_lesson():
    """Each concept of concepts.yaml whose issue is in ``required_issues`` is covered by a valid lesson
    (four parts, es + en)."""
    assert lessons.missing_concepts() == []


def test_validator_finds_each_kind_of_problem(tmp_path, monkeypatch):
    monkeypatch.setattr(lessons, "LESSONS_DIR", tmp_path)
    (tmp_path / "concepts.yaml").write_text("required_issues: [99]\nconcepts:\n  intro-ai: {es: a, en: b, issue: 99}\n")
    front = ("---\ntitle: {title}\norder: {order}\nsummary: s\nconcepts: [intro-ai]\nprerequisites: [{prerequisite}]\n"
             "demos: [{demo}]\nexercise: intro-ai\ncode:\n  - path: {path}\n    symbol: {symbol}\n    why: w\n---\n")
    body = "## A\n{what}\n## B\nsee [x](https://example.org)\n## C\ncode\n## D\ntry\n"
    good = {"title": "T", "order": 1, "prerequisite": "", "demo": "intro-ai", "path": "app/lessons.py",
            "symbol": "Lesson.part", "what": "w"}
    (tmp_path / "x.es.md").write_text(front.format(**{**good, "demo": "garments"}) + body.format(what="word " * 401))
    (tmp_path / "x.en.md").write_text(front.format(**{**good, "order": 2, "prerequisite": "nowhere", "demo": "no-such-demo",
                                                      "symbol": "missing_function"}) + body.format(what="w"))
    found = "\n".join(lessons.problems("x"))
    for expected in ("401 words", "https://example.org", "prerequisite 'nowhere'", "no-such-demo.js does not exist",
                     "garments.js exports no mount()", "no function or class 'missing_function'", "'order' differs",
                     "'prerequisites' differs", "'demos' differs"):
        assert expected in found
    (tmp_path / "x.en.md").write_text(front.format(**good) + "## only one\ntext\n")
    assert "1 '## ' sections, expected 4" in "\n".join(lessons.problems("x"))
    assert lessons.missing_concepts() == ["intro-ai (issue 99)"]


@pytest.mark.parametrize("path, symbol, first, last", [
    ("app/lessons.py", "Lesson.part", "    def part(self, name: str) -> Section:", "        return self.sections[PARTS.index(name)]"),
    ("app/lessons.py", "Excerpt", "@dataclass(frozen=True)", '    error: str = ""'),
    ("web/static/js/learn.js", "doneLessons", "/** The slugs of the lessons marked done in this browser. */", "}"),
])
def test_excerpts_are_the_repository_source(path, symbol, first, last):
    item = lessons.excerpt({"path": path, "symbol": symbol, "why": "w"})
    source = (lessons.REPO / path).read_text().split("\n")
    assert item.error == "" and item.text.split("\n")[0] == first and item.text.split("\n")[-1] == last
    assert item.text == "\n".join(source[item.start - 1:item.end])


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "app/missing.py", "README.md", ".git/HEAD", ""])
def test_excerpts_stay_inside_the_repository(path):
    assert lessons.excerpt({"path": path, "symbol": "x", "why": "w"}).error


def test_raw_html_in_markdown_is_escaped():
    html = lessons.render('<script>alert(1)</script>\n\n<img src=x onerror=alert(1)> [a](javascript:alert(1))\n\n'
                          "| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<script>" not in html and "<img" not in html and "href=\"javascript:" not in html
    assert "&lt;script&gt;" in html and "<table>" in html


@pytest.mark.parametrize("lang", ["es", "en"])
def test_pages_render(client, lang):
    index = client.get(f"/learn?lang={lang}")
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    text = index.get_data(as_text=True)
    for slug in SLUGS:
        assert f'href="/learn/{slug}"' in text
        page = client.get(f"/learn/{slug}?lang={lang}")
        assert page.status_code == 200, slug
        html = page.get_data(as_text=True)
        lesson = lessons.read(slug, lang)
        assert str(escape(lesson.title)) in html
        assert html.count('class="lesson-part"') == 4 and html.count('class="lesson-demo"') == len(lesson.meta["demos"])
        assert html.count('class="lesson-code"') == len(lesson.meta["code"]) and "lesson-code-error" not in html
        assert not KEYS & set(re.sub(r"<[^>]+>", " ", html).split()), "a catalogue key instead of its text"


def test_unknown_or_malformed_slug_is_a_404_page(client):
    for slug in ("no-such-lesson", "UPPER", "..%2Fx", "a.b"):
        response = client.get(f"/learn/{slug}?lang=en")
        assert response.status_code == 404, slug
    page = client.get("/learn/no-such-lesson?lang=en").get_data(as_text=True)
    assert "There is no lesson" in page and "no-such-lesson" in page


def test_navbar_skips_endpoints_this_app_lacks(app):
    with app.test_request_context("/learn"):
        from flask import render_template_string

        html = render_template_string('{% for e in ["learn.index", "nowhere.page"] if has_endpoint(e) %}[{{ e }}]{% endfor %}')
    assert html == "[learn.index]"


def test_tests_list_is_read_from_the_tests_folder(client):
    modules = client.get("/api/v1/learn/tests").get_json()["modules"]
    mine = next(module for module in modules if module["file"] == "tests/test_learn.py")
    entry = next(test for test in mine["tests"] if test["name"] == "test_raw_html_in_markdown_is_escaped")
    lines = (lessons.REPO / "tests" / "test_learn.py").read_text().split("\n")
    assert lines[entry["line"] - 1].startswith("def test_raw_html_in_markdown_is_escaped")
    assert mine == summarise_test_file(lessons.REPO / "tests" / "test_learn.py") and mine["doc"].startswith("Lessons")


def test_garments_are_real_fashion_mnist_photos_of_two_classes(client):
    from models.real_data import FASHION_MNIST_CLASSES, fashion_mnist_arrays

    answer = client.get("/api/v1/learn/garments?classes=tshirt,trouser&count=3&test=2").get_json()
    train = np.frombuffer(base64.b64decode(answer["train"]["pixels"]["data"]), np.uint8).reshape(answer["train"]["pixels"]["shape"])
    assert answer["classes"] == ["tshirt", "trouser"] and train.shape == (6, 28, 28)
    assert answer["train"]["labels"] == [0, 1] * 3 and answer["test"]["labels"] == [0, 1] * 2
    images, labels = fashion_mnist_arrays("train")
    first_trouser = images[np.flatnonzero(labels == FASHION_MNIST_CLASSES.index("trouser"))[0]]
    assert (train[1] == first_trouser).all()
    for query in ("classes=bag", "classes=bag,bag", "classes=bag,cat", "count=1", "count=x", "test=101"):
        response = client.get(f"/api/v1/learn/garments?{query}")
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_param", query


def test_ci_is_read_from_the_projects_workflow(client, monkeypatch):
    import yaml

    from app import learn

    answer = client.get("/api/v1/learn/ci").get_json()
    workflow = yaml.safe_load((lessons.REPO / ".github" / "workflows" / "ci.yml").read_text())
    assert [job["id"] for job in answer["jobs"]] == list(workflow["jobs"]) and "pull_request" in answer["triggers"]
    assert answer["script"]["commands"][-1] == "make test"
    deploy = next(job for job in answer["jobs"] if job["id"] == "deploy")
    assert deploy["needs"] == ["test"] and "refs/heads/main" in deploy["if"]
    monkeypatch.setattr(learn, "WORKFLOW", lessons.REPO / "no-such-workflow.yml")
    response = client.get("/api/v1/learn/ci")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "learn_ci_missing"


def test_a_short_file_without_symbols_is_shown_whole():
    item = lessons.excerpt({"path": ".ci/run", "symbol": "*", "why": "w"})
    assert item.error == "" and item.start == 1 and item.text.rstrip().endswith("make test")
    assert "symbol '*'" in lessons.excerpt({"path": ".ci/run", "symbol": "main", "why": "w"}).error
