"""The labelling page (/label) in real headless Chromium against the real app and database; the tiny model
of tests/tiny_model.py serves (labelling does not depend on what the network sees).

Real photos are analysed (and stored, with an API token) through POST /api/v1/predict on the live server;
an admin account is created in the app's database; the page is then driven like a person would: log in
through its form, create a project through its form, see the stored uploads in the queue, label the current
image with the keyboard shortcut ``1`` and find the label stored with the admin as author (page, API and
database).
"""
from __future__ import annotations

import hashlib

import pytest
import requests

from app.auth import create_user
from app.db import db
from app.labelling import Label
from app.tokens import create_token
from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
from tests.conftest import ADMIN
from tests.support import wait_until

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000
PHOTOS = ("skimage/chelsea", "darknet/dog.jpg", "skimage/coffee")


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


def wait_ready(page):
    """label.js sets body[data-state=ready] once the queue is loaded and the current image shown."""
    page.wait_for_selector("body[data-state=ready]", state="attached", timeout=TIMEOUT_MS)


def reload_marker(page):
    page.evaluate("document.body.dataset.state = ''")


def test_login_create_project_and_label_with_the_keyboard(app, photos):
    with live_server(app) as base_url:
        # Store three real photos as uploads through the public API, as a script does: with an API token.
        with app.app_context():
            token = create_token("label-page-test")
        files = [("image", (name.replace("/", "_") + ".png", photos[name].png_bytes(), "image/png"))
                 for name in PHOTOS]
        response = requests.post(base_url + "/api/v1/predict", files=files, timeout=120,
                                 headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and response.json()["stored"], response.text
        shas = {hashlib.sha256(photos[name].png_bytes()).hexdigest() for name in PHOTOS}
        with app.app_context():
            create_user(**ADMIN)

        with chromium() as browser:
            context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
            outside = guard_loopback(context)
            errors = page_errors(context)
            try:
                page = context.new_page()
                page.goto(base_url + "/label?lang=en")

                # Not logged in: only the login form is shown.
                page.wait_for_selector("#login-form:not(.d-none)", timeout=TIMEOUT_MS)
                assert page.locator("#workspace").is_hidden()
                page.fill("#login-user", ADMIN["username"])
                page.fill("#login-password", "wrong-password")
                page.click("#login-form button[type=submit]")
                page.wait_for_selector("#label-error:not(.d-none)", timeout=TIMEOUT_MS)
                assert page.locator("#workspace").is_hidden()
                page.fill("#login-password", ADMIN["password"])
                page.click("#login-form button[type=submit]")
                page.wait_for_selector("#workspace:not(.d-none)", timeout=TIMEOUT_MS)
                assert page.locator("#login-form").is_hidden() and page.locator("#label-error").is_hidden()
                assert page.locator("#project option").count() == 0  # no project yet

                # Create a project through the page's form.
                page.fill("#project-name", "pets")
                page.fill("#project-classes", "cat, dog")
                page.click("#project-form button[type=submit]")
                wait_ready(page)
                assert page.locator("#label-error").is_hidden()
                assert page.eval_on_selector("#project", "select => select.value") == "pets"
                buttons = page.locator("#class-buttons button")
                assert [buttons.nth(i).get_attribute("data-class") for i in range(buttons.count())] == ["cat", "dog"]
                assert buttons.nth(0).inner_text().startswith("1")

                # The queue shows exactly the stored uploads, and the current image is served to the admin.
                assert page.inner_text("#total") == "3"
                thumbs = page.locator("#queue img")
                queued = {thumbs.nth(i).get_attribute("src").rsplit("/", 1)[1] for i in range(thumbs.count())}
                assert queued == shas
                current = page.get_attribute("#current-image", "data-sha256")
                assert current in shas
                wait_until(lambda: page.eval_on_selector("#current-image", "img => img.complete && img.naturalWidth > 0"),
                           TIMEOUT_MS / 1000, "the current image never loaded")
                assert page.locator("#history li").count() == 0

                # Label the current image with the shortcut "1" (= the first class, "cat").
                page.evaluate("document.activeElement && document.activeElement.blur()")
                reload_marker(page)
                page.keyboard.press("1")
                wait_ready(page)
                assert page.locator("#label-error").is_hidden()
                assert page.inner_text("#total") == "2"
                remaining = {thumbs.nth(i).get_attribute("src").rsplit("/", 1)[1] for i in range(thumbs.count())}
                assert remaining == shas - {current}
                counts = page.locator("#counts tr").all_inner_texts()
                assert any(row.split() == ["cat", "1", "0"] for row in counts), counts

                # The page's history of the labelled image (filter: labelled) names the admin.
                reload_marker(page)
                page.select_option("#status", "labelled")
                wait_ready(page)
                assert page.inner_text("#total") == "1"
                assert page.get_attribute("#current-image", "data-sha256") == current
                page.wait_for_selector("#history li", timeout=TIMEOUT_MS)
                history_text = page.inner_text("#history")
                assert "admin" in history_text and "cat" in history_text
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "label.png"), full_page=True)

                # Through the API, with the page's session: one label, "cat", by the admin.
                answer = page.request.get(f"{base_url}/api/v1/labelling/projects/pets/labels/{current}/history")
                assert answer.ok
                history = answer.json()["history"]
                assert [(row["status"], row["label"], row["user"]) for row in history] == [("labelled", "cat", "admin")]
                exported = page.request.get(f"{base_url}/api/v1/labelling/projects/pets/labels").json()["labels"]
                assert [(row["sha256"], row["label"], row["user"]) for row in exported] == [(current, "cat", "admin")]
            finally:
                context.close()
            assert outside == [], f"requests left 127.0.0.1: {outside}"
            assert errors == [], f"page errors: {errors}"

        # And in the database itself.
        with app.app_context():
            rows = db.session.scalars(db.select(Label)).all()
            assert [(r.project, r.upload_sha256, r.status, r.label, r.user) for r in rows] == [
                ("pets", current, "labelled", "cat", "admin")]
