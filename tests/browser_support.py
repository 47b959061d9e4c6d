"""Helpers for the browser tests and benchmarks: the real app on 127.0.0.1:0 in a thread, Debian chromium
driven by Playwright, and a guard that fails on any request leaving the loopback interface."""
from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlsplit

from werkzeug.serving import make_server

from export.browser import CHROMIUM, CHROMIUM_FLAGS, serving

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
LOOPBACK = {"127.0.0.1"}
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # Chromium's test pattern


@contextlib.contextmanager
def live_server(app):
    """Serve ``app`` on 127.0.0.1 at a free port from a thread; yields the base URL, stops on exit."""
    with serving(make_server("127.0.0.1", 0, app, threaded=True)) as url:
        yield url


@contextlib.contextmanager
def chromium():
    """A headless Debian chromium (``playwright install`` is not needed) with a fake webcam."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install chromium (done by `make setup`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + FAKE_CAMERA)
        try:
            yield browser
        finally:
            browser.close()


def guard_loopback(context) -> list[str]:
    """Abort every request of ``context`` that is not for 127.0.0.1; returns the list of those URLs."""
    outside: list[str] = []

    def check(route):
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in LOOPBACK:
            outside.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", check)
    return outside


def page_errors(context) -> list[str]:
    """Collect the page errors and Content-Security-Policy violations of ``context``; returns the list."""
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    context.on("console", lambda message: errors.append(message.text)
               if "Content Security Policy" in message.text else None)
    return errors
