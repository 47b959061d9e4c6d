"""Every page (/, /network, /models, /label), in Spanish and English, at a phone (390 px) and a desktop
(1366 px) width, in real headless Chromium against the real app: nothing is wider than the window, and no
catalogue key or raw metric key ("diagnosis.numbers.val_loss_rise", "models.accuracy"…) reaches the page's
visible text. Screenshots of every page at both widths go to test-artifacts/layout-<page>-<lang>-<width>.png.

The tiny ONNX model of tests/tiny_model.py serves (layout does not depend on what the network sees): the
current "animals" version carries the metrics a trained version has (test/validation/cross-validation,
the fit diagnosis with its rule numbers, curves), so /models shows every block; Analyze gets a real photo
(the tiny model answers "unknown", the widest badge); /label is used after logging in from the navbar.
"""
from __future__ import annotations

import json
import re

import pytest
import requests

from app.auth import create_user
from app.i18n import CATALOGUE
from models.registry import Registry
from tests import tiny_model
from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
from tests.conftest import ADMIN

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000
WIDTHS = (390, 1366)
LANGUAGES = ("es", "en")
PAGES = ("/", "/network", "/models", "/label")
RAW_KEY = re.compile(r"^[a-z_]+\.[a-z_.]+$")
KEYS = set(json.loads(CATALOGUE.read_text(encoding="utf-8")))


def summary(images: int, accuracy: float) -> dict:
    per_class = {label: {"precision": accuracy, "recall": accuracy, "f1": accuracy, "support": images // 2}
                 for label in ("cat", "dog")}
    right = round(images * accuracy / 2)
    return {"images": images, "accuracy": accuracy, "macro_f1": accuracy, "per_class": per_class,
            "confusion": {"labels": ["cat", "dog"], "matrix": [[right, images // 2 - right], [images // 2 - right, right]],
                          "files": {}}}


METRICS = {
    "test": summary(10, 0.8), "validation": summary(10, 0.9),
    "crossval": {"method": "stratified_group_kfold", "folds": 3, "out_of_fold": summary(40, 0.85),
                 "accuracy": {"mean": 0.85, "std": 0.05}, "macro_f1": {"mean": 0.84, "std": 0.05}},
    "diagnosis": {"stage": "head", "verdict": "overfitting",
                  "reason": "validation loss rose 35% above its minimum (> 20%) while training loss fell",
                  "numbers": {"epoch": 6, "train_accuracy": 1.0, "val_accuracy": 0.9, "gap": 0.1,
                              "val_loss_min": 0.2, "val_loss_last": 0.27, "val_loss_rise": 0.35},
                  "rules": {"underfit_accuracy": 0.8, "overfit_gap": 0.1, "overfit_loss_rise": 0.2}},
    "curves": {"head": {"loss": [1.2, 0.6, 0.3, 0.2, 0.1, 0.05], "val_loss": [1.0, 0.5, 0.3, 0.2, 0.24, 0.27],
                        "accuracy": [0.5, 0.7, 0.9, 0.95, 1.0, 1.0], "val_accuracy": [0.5, 0.7, 0.8, 0.9, 0.9, 0.9]}},
}


@pytest.fixture(scope="module")
def layout_registry(tmp_path_factory):
    """The tiny model twice: v1, then v2 (current) whose card has a trained version's metrics."""
    registry = Registry(tmp_path_factory.mktemp("layout-registry"))
    tiny_model.publish(registry)
    version = tiny_model.publish(registry)
    with registry.amend(tiny_model.NAME, version) as draft:
        draft.card["metrics"] = METRICS
    return registry


@pytest.fixture
def serving_registry(layout_registry):
    return layout_registry


def visible_problems(text: str) -> list[str]:
    """Catalogue keys, raw dotted metric keys and diagnosis keys in the page's visible text."""
    tokens = {token.strip("«»'\"()[]{},;:!?¿¡—–-·…") for token in text.split()}
    found = sorted(token for token in tokens if token and (token in KEYS or RAW_KEY.match(token)))
    return found + (["diagnosis."] if "diagnosis." in text else [])


def open_page(page, base_url: str, path: str, lang: str, photo: bytes):
    page.goto(f"{base_url}{path}?lang={lang}")
    if path == "/":
        page.wait_for_selector("#edge-status[data-state=ready], #edge-status[data-state=unavailable]", state="attached",
                               timeout=TIMEOUT_MS)
        page.set_input_files("#image-input", files=[{"name": "coffee.png", "mimeType": "image/png", "buffer": photo}])
        page.wait_for_selector("body[data-state=done]", state="attached", timeout=TIMEOUT_MS)
        page.wait_for_selector("#details:not(.d-none)", timeout=TIMEOUT_MS)
    elif path == "/models":
        page.wait_for_selector("body[data-state=done]", state="attached", timeout=TIMEOUT_MS)
        page.wait_for_selector("#diagnosis", timeout=TIMEOUT_MS)
    elif path == "/network":
        # Done loading: the layers are drawn, or the status says why not (the loading text ends with "…").
        page.wait_for_function("() => document.querySelector('#network-graph details') !== null"
                               " || !document.getElementById('network-status').textContent.trim().endsWith('…')",
                               timeout=TIMEOUT_MS)
    elif path == "/label":
        if page.locator("#workspace").is_hidden():
            page.wait_for_selector("#login-form:not(.d-none)", timeout=TIMEOUT_MS)  # /label opens the navbar login
            page.fill("#login-user", ADMIN["username"])
            page.fill("#login-password", ADMIN["password"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#workspace:not(.d-none)", timeout=TIMEOUT_MS)
            assert page.locator("#nav-user").is_visible()
        page.wait_for_load_state("networkidle")  # the project list has arrived (a language's second pass has one)
        if page.locator("#project option").count() == 0:
            page.fill("#project-name", "pets")
            page.fill("#project-classes", "cat, dog")
            page.click("#project-form button[type=submit]")
            page.wait_for_function("() => document.getElementById('project-name').value === ''", timeout=TIMEOUT_MS)  # cleared
        page.wait_for_selector("body[data-state=ready]", state="attached", timeout=TIMEOUT_MS)
        page.wait_for_selector("#class-buttons button", timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle")


def test_every_page_fits_and_shows_no_keys(app, photos):
    photo = photos["skimage/coffee"].png_bytes()
    with app.app_context():
        create_user(**ADMIN)
    ARTIFACTS.mkdir(exist_ok=True)
    with live_server(app) as base_url:
        favicon = requests.get(base_url + "/favicon.ico", timeout=30)
        assert favicon.status_code == 200 and favicon.headers["Content-Type"].startswith("image/svg+xml")
        failures: list[str] = []
        with chromium() as browser:
            for lang in LANGUAGES:
                for width in WIDTHS:
                    context = browser.new_context(viewport={"width": width, "height": 900},
                                                  locale="es-ES" if lang == "es" else "en-US")
                    outside = guard_loopback(context)
                    errors = page_errors(context)
                    try:
                        page = context.new_page()
                        # The navbar's login button opens the login form on a page that has no form of its own.
                        page.goto(f"{base_url}/network?lang={lang}")
                        page.click("#login-open")
                        page.wait_for_selector("#login-form:not(.d-none)", timeout=TIMEOUT_MS)
                        for path in PAGES:
                            open_page(page, base_url, path, lang, photo)
                            name = path.strip("/") or "analyze"
                            page.screenshot(path=str(ARTIFACTS / f"layout-{name}-{lang}-{width}.png"), full_page=True)
                            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                            if inner != width or scroll > inner:
                                failures.append(f"{path} {lang} {width}px: scrollWidth {scroll} > innerWidth {inner}")
                            problems = visible_problems(page.inner_text("body"))
                            if problems:
                                failures.append(f"{path} {lang} {width}px: keys in the text: {problems}")
                    finally:
                        context.close()
                    assert outside == [], f"requests left 127.0.0.1: {outside}"
                    assert errors == [], f"page errors ({lang}, {width}px): {errors}"
        assert failures == [], "\n".join(failures)


def test_spanish_page_names_imagenet_tags_in_spanish(app, photos):
    """Tags are mapped by index to models/imagenet_labels_es.json; the English name stays on hover."""
    with live_server(app) as base_url:
        names = requests.get(base_url + "/imagenet-labels.es.json", timeout=30).json()
        english = requests.get(base_url + "/imagenet-labels.en.json", timeout=30).json()
        assert len(names) == len(english) == 1000 and names[285] == "gato egipcio" and english[285] == "Egyptian cat"
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="es-ES")
            try:
                page = context.new_page()
                open_page(page, base_url, "/", "es", photos["skimage/chelsea"].png_bytes())
                tags = page.eval_on_selector_all("#tags li", "nodes => nodes.map(n => [n.dataset.index, n.textContent, n.title])")
                assert len(tags) == 5
                for index, text, title in tags:
                    assert text.startswith(names[int(index)]) and english[int(index)] in title
            finally:
                context.close()
