"""Every lesson in real headless Chromium, in Spanish and English, against the real app serving the real
calibrated default model (docs/lessons.md, section 5).

One browser context and one page walk /learn and every /learn/<slug>?quick=1: each demo must reach
``data-state="done"`` and each exercise ``"ready"`` (never ``"error"``), and show a result — its ``data-result``
numbers finite and inside the ranges its ``data-expect`` declares, or a canvas/image. No page error, no CSP
violation, no request leaving 127.0.0.1, no catalogue key in the visible text, nothing wider than a 390 px phone.
Screenshots: test-artifacts/lessons/<slug>-<lang>-<width>.png (full page at 1366 px, the first screen at 390 px).
"""
from __future__ import annotations

import json
import math
import re
import time

import pytest

from app import lessons
from app.i18n import CATALOGUE
from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
from tests.conftest import serving_app
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.browser]
LANGUAGES = ("es", "en")
DESKTOP, PHONE = 1366, 390
PAGE_TIMEOUT_S = 60  # every demo and the exercise of one lesson, with ?quick=1 (≤ 3 s each when idle)
SHOTS = ARTIFACTS / "lessons"
TOKEN = re.compile(r"[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)+")
LESSON_KEY = re.compile(r"^lesson\.[a-z0-9-]+\.[a-z0-9_.]+$")  # a lesson key, even one missing from the catalogue
KEYS = set(json.loads(CATALOGUE.read_text(encoding="utf-8")))
# In the page: the state and results of every demo/exercise root of a lesson.
ROOTS_JS = """() => [...document.querySelectorAll('[data-demo], [data-exercise]')].map((root) => ({
  kind: root.dataset.demo ? 'demo' : 'exercise', name: root.dataset.demo || root.dataset.exercise,
  state: root.dataset.state || '', result: root.dataset.result || null, expect: root.dataset.expect || null,
  visuals: root.querySelectorAll('canvas, img').length, text: root.innerText.slice(0, 300)}))"""
# The page's visible words without code (an excerpt of the repository may quote a catalogue key).
PROSE_JS = """() => { const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('pre, code').forEach((node) => node.remove()); return main.textContent; }"""
SETTLED_JS = """() => [...document.querySelectorAll('[data-demo], [data-exercise]')]
  .every((root) => ['done', 'ready', 'error'].includes(root.dataset.state))"""


@pytest.fixture(scope="module")
def lesson_app(calibrated_registry, tmp_path_factory):
    """The app serving the calibrated default model (TF.js exports, OOD rule, parity report)."""
    instance = tmp_path_factory.mktemp("learn-browser-instance")
    return serving_app({"MODELS_DIR": str(calibrated_registry.root), "RATELIMIT_ENABLED": False, "STORE_UPLOADS": False,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'riim.sqlite3'}"})


def raw_keys(text: str) -> list[str]:
    """Catalogue keys (or lesson keys that should be in it) in a page's visible text."""
    return sorted({token for token in TOKEN.findall(text) if token in KEYS or LESSON_KEY.match(token)})


def root_problems(root: dict) -> list[str]:
    """What is wrong with one demo/exercise root once the page has settled."""
    where = f"{root['kind']} {root['name']}"
    wanted = "done" if root["kind"] == "demo" else "ready"
    if root["state"] != wanted:
        return [f"{where}: state {root['state']!r}, expected {wanted!r}: {root['text']!r}"]
    found = []
    try:
        result = json.loads(root["result"]) if root["result"] else {}
        expect = json.loads(root["expect"]) if root["expect"] else {}
    except json.JSONDecodeError as error:
        return [f"{where}: data-result/data-expect is not JSON: {error}"]
    for name, value in result.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            found.append(f"{where}: result {name} = {value!r} is not a finite number")
        elif name in expect and not expect[name][0] <= value <= expect[name][1]:
            found.append(f"{where}: result {name} = {value} outside its plausible range {expect[name]}")
    if root["kind"] == "demo" and not result and not root["visuals"]:
        found.append(f"{where}: shows no result (no data-result numbers, no canvas or image)")
    return found


def open_lesson(page, base_url: str, slug: str, lang: str) -> tuple[list[dict], float]:
    """Open a lesson with ?quick=1 and wait until every root has settled; (roots, seconds)."""
    started = time.monotonic()
    response = page.goto(f"{base_url}/learn/{slug}?lang={lang}&quick=1")
    assert response.status == 200, f"{slug} {lang}: HTTP {response.status}"
    page.wait_for_selector("[data-demo][data-state], [data-exercise][data-state]", state="attached", timeout=PAGE_TIMEOUT_S * 1000)
    try:
        wait_until(lambda: page.evaluate(SETTLED_JS), PAGE_TIMEOUT_S, f"{slug} {lang}: demos still running", interval=0.1)
    except AssertionError:
        pass  # reported below with each root's state
    return page.evaluate(ROOTS_JS), time.monotonic() - started


def test_every_lesson_runs_in_both_languages(lesson_app):
    slugs = [lesson.slug for lesson in lessons.index("es")]
    assert slugs, "no lessons"
    SHOTS.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    timings: dict[str, float] = {}
    with live_server(lesson_app) as base_url, chromium() as browser:
        context = browser.new_context(viewport={"width": DESKTOP, "height": 900}, locale="es-ES")
        outside = guard_loopback(context)
        errors = page_errors(context)
        page = context.new_page()
        try:
            for lang in LANGUAGES:
                page.set_viewport_size({"width": DESKTOP, "height": 900})
                page.goto(f"{base_url}/learn?lang={lang}")
                listed = page.eval_on_selector_all("[data-lesson]", "cards => cards.map((card) => card.dataset.lesson)")
                assert listed == slugs, f"/learn ({lang}) lists {listed}"
                page.screenshot(path=str(SHOTS / f"index-{lang}-{DESKTOP}.png"), full_page=True)
                for slug in slugs:
                    seen = len(errors)
                    roots, seconds = open_lesson(page, base_url, slug, lang)
                    timings[f"{slug} {lang}"] = round(seconds, 1)
                    failures += [f"{slug} ({lang}): {problem}" for root in roots for problem in root_problems(root)]
                    failures += [f"{slug} ({lang}): page error or CSP violation: {error}" for error in errors[seen:]]
                    if keys := raw_keys(page.evaluate(PROSE_JS)):
                        failures.append(f"{slug} ({lang}): catalogue keys in the text: {keys}")
                    page.screenshot(path=str(SHOTS / f"{slug}-{lang}-{DESKTOP}.png"), full_page=True)
                    page.set_viewport_size({"width": PHONE, "height": 844})
                    scroll = page.evaluate("document.documentElement.scrollWidth")
                    if scroll > PHONE:
                        failures.append(f"{slug} ({lang}): {scroll} px wide on a {PHONE} px phone")
                    page.screenshot(path=str(SHOTS / f"{slug}-{lang}-{PHONE}.png"))
                    page.set_viewport_size({"width": DESKTOP, "height": 900})
            # Progress is kept in this browser: marking a lesson done shows on the index.
            open_lesson(page, base_url, slugs[0], "en")  # learn.js has bound its buttons once the demos settle
            page.click("#lesson-done")
            page.goto(f"{base_url}/learn?lang=en")
            page.wait_for_selector(f"[data-lesson='{slugs[0]}'] .lesson-done-badge", state="visible", timeout=PAGE_TIMEOUT_S * 1000)
            assert page.inner_text("#learn-progress-text") == f"You have finished 1 of {len(slugs)} lessons."
            page.set_viewport_size({"width": PHONE, "height": 844})
            page.screenshot(path=str(SHOTS / f"index-en-{PHONE}.png"), full_page=True)
            assert page.goto(f"{base_url}/learn/no-such-lesson?lang=en").status == 404
        finally:
            context.close()
    print("seconds per lesson page (quick):", json.dumps(timings))
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert errors == [], f"page errors / CSP violations: {errors}"
    assert failures == [], "\n".join(failures)
