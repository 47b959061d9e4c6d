"""The Series page and the recurrent-networks lesson in real headless Chromium, on real linear ONNX models of the
real CO2 series (tests/series_support.py): numbers shown, charts drawn, the threshold slider calls
detect-anomalies; no request leaves 127.0.0.1, no page or CSP error; screenshots (es/en, 1366 and 390 wide)."""
from __future__ import annotations

import re

import pytest

from models.registry import Registry
from tests import series_support
from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
from tests.conftest import serving_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TIMEOUT_MS = 60_000
SHOTS = ARTIFACTS / "series"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("series-browser")
    registry = Registry(root / "store")
    series_support.publish(registry, *series_support.co2(root))
    application = serving_app({"MODELS_DIR": str(registry.root), "RATELIMIT_ENABLED": False,
                               "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'riim.sqlite3'}"})
    with live_server(application) as url:
        yield url


@pytest.fixture(scope="module")
def browser(base_url):
    with chromium() as launched:
        yield launched


def checked_page(browser, lang: str, width: int):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale=f"{lang}-ES" if lang == "es" else "en-GB",
                                  viewport={"width": width, "height": 900 if width > 500 else 844})
    return context, guard_loopback(context), page_errors(context)


@pytest.mark.parametrize("lang, width", [("es", 1366), ("en", 390)])
def test_series_page_shows_forecasts_baselines_and_anomalies(browser, base_url, lang, width):
    context, outside, errors = checked_page(browser, lang, width)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/series?lang={lang}")
        page.wait_for_selector("main[data-state=done]", timeout=TIMEOUT_MS)
        page.wait_for_selector("#next-chart[data-state=done]", timeout=TIMEOUT_MS)
        table = page.inner_text("#metrics")
        assert "MASE" in table and re.search(r"0[.,]\d", table), table
        assert page.locator("#heldout-chart canvas").count() == 1 and page.locator("#curves-chart canvas").count() == 1
        assert "series." not in page.inner_text("main")  # no raw catalogue keys
        page.screenshot(path=str(SHOTS / f"forecast-{lang}-{width}.png"), full_page=True)

        page.select_option("#series-model", "series-anomaly")
        page.wait_for_selector("#anomaly-chart[data-state=done]", timeout=TIMEOUT_MS)
        summary = page.inner_text("#anomaly-summary")
        found = re.search(r"(\d+) (?:de|of) 3", summary)
        assert found and int(found.group(1)) == 3, summary  # the three injected spikes at the calibrated threshold
        with page.expect_response(lambda r: "detect-anomalies?" in r.url and "threshold=" in r.url) as answer:
            page.eval_on_selector("#threshold", "e => { e.value = '0'; e.dispatchEvent(new Event('change')); }")
        assert answer.value.status == 200 and answer.value.json()["threshold_source"] == "query"
        page.wait_for_function("document.querySelector('#anomaly-summary').textContent.includes('3')")
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1  # nothing overflows sideways
        page.screenshot(path=str(SHOTS / f"anomalies-{lang}-{width}.png"), full_page=True)
    finally:
        context.close()
    assert outside == [] and errors == [], (outside, errors)


def test_recurrent_networks_lesson_trains_an_lstm_in_the_browser(browser, base_url):
    context, outside, errors = checked_page(browser, "es", 1366)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/learn/recurrent-networks?quick=1&lang=es")
        page.wait_for_selector("[data-state=done]", timeout=TIMEOUT_MS)
        page.wait_for_selector("[data-state=ready]", timeout=TIMEOUT_MS)
        text = page.inner_text("main")
        errors_shown = re.search(r"error medio de la LSTM ([\d,]+) ppm; repetir el último valor ([\d,]+) ppm; repetir el "
                                 r"año anterior ([\d,]+) ppm", text)
        assert errors_shown, text
        model, naive, seasonal = (float(value.replace(",", ".")) for value in errors_shown.groups())
        assert 0 < model < 10 and 0 < naive < 10 and 0 < seasonal < 10
        assert "series-price" in text  # the server's ONNX model answered too
        page.fill("#rnn-horizon", "12")
        page.get_by_role("button", name="Comprobar").click()
        assert "¡Correcto!" in page.inner_text("main")
        page.screenshot(path=str(SHOTS / "lesson-es-1366.png"), full_page=True)
    finally:
        context.close()
    assert outside == [] and errors == [], (outside, errors)
