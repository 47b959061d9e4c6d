"""Handwritten digits end to end: `riim digits train` (tiny) → registry → ONNX served by the API → TF.js in
the page; the JS preprocessing against Python's golden vectors; and, with the real training config
(8 epochs on the full split, cached under pytest's cache folder by the hash of the training code), digits 0–9 DRAWN with the mouse
on /digits: the CNN gets ≥ 9 of 10 right, and the server and the browser agree on every one."""
from __future__ import annotations

import io

import numpy as np
import pytest

from cli.digits import train_and_publish
from models import card as card_schema
from models.registry import Registry
from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
from tests.conftest import serving_app
from tests.digits_support import CANVAS, drawn, golden_cases, stroke_paths, trained_registry

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.tensorflow, pytest.mark.filterwarnings("ignore")]  # training
SHOTS = ARTIFACTS / "digits"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Both networks trained for 1 epoch on 300 digits, published, exported and promoted."""
    root = tmp_path_factory.mktemp("digits-tiny")
    rows = train_and_publish(Registry(root), limit=300, epochs=1, echo=lambda *_: None)
    return Registry(root), rows


TRAINED_EPOCHS = 8  # the full data, fewer epochs than `riim digits train` (10 MLP / 30 CNN): CI trains it afresh


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory):
    """Both networks on the full MNIST split for TRAINED_EPOCHS, built once per code version and kept in
    pytest's cache folder when there is one (a clean clone, as CI, builds it)."""
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"digits-registry-{TRAINED_EPOCHS}") if cache else tmp_path_factory.mktemp("digits-registry")
    return Registry(trained_registry(folder, lambda store: train_and_publish(
        Registry(store), epochs=TRAINED_EPOCHS, echo=lambda *_: None)))


def app_for(registry, tmp_path_factory):
    instance = tmp_path_factory.mktemp("digits-instance")
    return serving_app({"MODELS_DIR": str(registry.root), "RATELIMIT_ENABLED": False, "STORE_UPLOADS": False,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'riim.sqlite3'}"})


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


def open_page(browser, url, lang="es", width=1366, height=900):
    context = browser.new_context(viewport={"width": width, "height": height}, locale=f"{lang}-ES")
    outside, errors = guard_loopback(context), page_errors(context)
    page = context.new_page()
    page.goto(f"{url}/digits?lang={lang}")
    page.wait_for_function("() => ['ready', 'error'].includes(document.getElementById('digits').dataset.state)",
                           timeout=60_000)
    assert page.eval_on_selector("#digits", "e => e.dataset.state") == "ready", page.inner_text("#digit-status")
    return context, page, outside, errors


def draw(page, digit: int) -> dict:
    """Draw ``digit`` stroke by stroke with the mouse; the answers of both networks, both places."""
    page.click("#digit-clear")
    page.wait_for_function("() => document.getElementById('digits').dataset.state === 'refused'")
    box = page.locator("#digit-canvas").bounding_box()
    scale = box["width"] / CANVAS
    for stroke in stroke_paths(digit):
        page.mouse.move(box["x"] + stroke[0][0] * scale, box["y"] + stroke[0][1] * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.up()
    page.wait_for_function("() => document.getElementById('digits').dataset.state === 'done'", timeout=30_000)
    return {kind: {where: page.get_attribute(f"[data-kind={kind}] [data-where={where}] .digit-answer", "data-digit")
                   for where in ("server", "browser")} for kind in ("mlp", "cnn")}


def test_tiny_training_publishes_two_servable_digit_models(tiny):
    registry, rows = tiny
    assert registry.models(task="digit-recognition") == ["digits-cnn", "digits-mlp"]
    for kind, row in rows.items():
        card = registry.card(row["name"])
        card_schema.validate(card)
        assert card["task"] == "digit-recognition" and card["architecture"]["kind"] == kind
        assert {"keras", "onnx", "onnx_int8", "tfjs"} <= set(card["files"])
        assert card["parity"]["onnx_fp32_vs_keras"]["max_abs_diff"]["probabilities"] < 1e-4
        assert card["training"]["dataset"]["split"]["train"] == 300
    mlp = [layer["type"] for layer in registry.card("digits-mlp")["architecture"]["layers"]]
    assert mlp == ["InputLayer", "Flatten", "Dense", "Dropout", "Dense", "Dense"]  # the document's network


def test_api_answers_with_both_models(tiny, tmp_path_factory):
    client = app_for(tiny[0], tmp_path_factory).test_client()
    pixels = np.zeros((28, 28))
    pixels[4:24, 13:16] = 1.0  # a "1"
    body = client.post("/api/v1/digits/predict", json={"pixels": pixels.tolist()}).json
    assert [r["kind"] for r in body["results"]] == ["mlp", "cnn"]
    for result in body["results"]:
        assert sum(result["probabilities"]) == pytest.approx(1, abs=1e-4) and len(result["top"]) == 3
        assert result["digit"] == result["top"][0]["digit"] and result["inference_ms"] > 0
    buffer = io.BytesIO()
    drawn(7).save(buffer, "PNG")
    response = client.post("/api/v1/digits/predict?model=cnn", data={"image": (io.BytesIO(buffer.getvalue()), "7.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 200 and [r["kind"] for r in response.json["results"]] == ["cnn"]
    assert response.json["preprocessing"]["source"] == "image" and np.asarray(response.json["input"]).shape == (28, 28)


def test_page_answers_in_the_browser_and_the_js_steps_match_python(tiny, browser, tmp_path_factory):
    cases = golden_cases()
    with live_server(app_for(tiny[0], tmp_path_factory)) as url:
        context, page, outside, errors = open_page(browser, url)
        got = page.evaluate("""async (cases) => {
          const { preprocess } = await import('/static/js/digits_preprocess.js');
          return cases.map((c) => {
            const r = preprocess(Uint8Array.from(c.pixels), c.width, c.height, 3);
            return { reason: r.reason, threshold: r.info.threshold ?? null, box: r.info.box ?? null,
                     input: r.input ? Array.from(r.input) : null,
                     steps: Object.fromEntries(Object.entries(r.steps).map(([k, v]) => [k, [v.height, v.width]])) };
          });
        }""", [{k: v for k, v in case.items() if k != "input"} for case in cases])
        for case, js in zip(cases, got):
            assert (js["reason"], js["threshold"], js["box"], js["steps"]) == (
                case["reason"], case["threshold"], case["box"], case["steps"]), case["name"]
            if case["input"] is not None:
                assert np.abs(np.asarray(js["input"]) - np.asarray(case["input"])).max() <= 1e-6, case["name"]
        answers = draw(page, 7)
        for kind in ("mlp", "cnn"):
            assert answers[kind]["server"] in "0123456789" and answers[kind]["browser"] in "0123456789"
        page.click("#camera-start")  # Chromium's fake webcam: a capture goes through the same steps
        page.wait_for_function("() => document.getElementById('camera').videoWidth > 0", timeout=20_000)
        page.evaluate("() => { document.getElementById('digits').dataset.state = 'capturing'; }")
        page.click("#camera-capture")
        page.wait_for_function("() => ['done', 'refused'].includes(document.getElementById('digits').dataset.state)",
                               timeout=30_000)
        context.close()
    assert not outside and not errors


def test_drawn_digits_are_read_by_the_cnn_on_server_and_browser(trained, browser, tmp_path_factory):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(app_for(trained, tmp_path_factory)) as url:
        context, page, outside, errors = open_page(browser, url)
        answers = {digit: draw(page, digit) for digit in range(10)}
        page.screenshot(path=SHOTS / "digits-es-1366.png", full_page=True)
        page.evaluate("() => { document.getElementById('digits').dataset.state = 'uploading'; }")
        page.set_input_files("#digit-photo", files=[{"name": "2.jpg", "mimeType": "image/jpeg", "buffer": photo_of(2)}])
        page.wait_for_function("() => document.getElementById('digits').dataset.state === 'done'", timeout=30_000)
        photo = {where: page.get_attribute(f"[data-kind=cnn] [data-where={where}] .digit-answer", "data-digit")
                 for where in ("server", "browser")}
        assert photo == {"server": "2", "browser": "2"}
        page.set_input_files("#digit-photo", files=[{"name": "two.png", "mimeType": "image/png", "buffer": two_digits()}])
        page.wait_for_function("() => document.getElementById('digits').dataset.state === 'refused'")
        assert page.eval_on_selector("#digits", "e => e.dataset.reason") == "several_digits"
        assert page.is_visible("#digit-message")
        context.close()
        for lang, width in (("en", 390),):
            context, page, more_outside, more_errors = open_page(browser, url, lang, width, 844 if width < 500 else 900)
            draw(page, 3)
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=SHOTS / f"digits-{lang}-{width}.png", full_page=True)
            outside += more_outside
            errors += more_errors
            context.close()
    right = [digit for digit, answer in answers.items() if answer["cnn"]["browser"] == str(digit)]
    print({digit: answer for digit, answer in answers.items()})
    assert len(right) >= 9, answers
    assert all(answer[kind]["server"] == answer[kind]["browser"] for answer in answers.values() for kind in answer)
    assert not outside and not errors


def two_digits() -> bytes:
    from PIL import Image

    picture = Image.new("RGB", (560, 280), "white")
    picture.paste(drawn(1), (0, 0))
    picture.paste(drawn(4), (280, 0))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def photo_of(digit: int) -> bytes:
    """A JPEG like a phone photo of the drawn digit: grey paper lit unevenly, noise, dark ink, 640×480."""
    from PIL import Image

    rng = np.random.default_rng(digit)
    paper = np.linspace(140, 230, 640)[None, :, None] + rng.normal(0, 5, (480, 640, 3))
    ink = np.asarray(drawn(digit).resize((300, 300)).convert("L"), np.float64)[..., None] / 255.0
    picture = paper.copy()
    picture[90:390, 170:470] = paper[90:390, 170:470] * ink + 35 * (1 - ink)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()
