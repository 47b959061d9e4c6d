"""The web app in real headless Chromium (Debian chromium + Playwright) against the real app and model.

The server runs on 127.0.0.1:0 in a thread; every browser context aborts and reports any request that
would leave the loopback interface. Screenshots of each page go to test-artifacts/.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.preprocess import load_image, normalize, to_model_pixels
from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
from tests.conftest import serving_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="session")
def web_app(exported_registry, tmp_path_factory):
    """The app serving the default model with every export (TF.js float16 + uint8) and its parity report. The
    server runs fp32, the reference the browser's float16 model is compared with (|Δp|)."""
    instance = tmp_path_factory.mktemp("browser-instance")
    return serving_app({"MODELS_DIR": str(exported_registry.root), "RATELIMIT_ENABLED": False,
                        "DEFAULT_PRECISION": "fp32",
                       "STORE_UPLOADS": False, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'riim.sqlite3'}"})


@pytest.fixture(scope="module")
def base_url(web_app):
    with live_server(web_app) as url:
        yield url


@pytest.fixture(scope="module")
def browser(web_app):
    """One Chromium for this module, started after the export (which drives its own Chromium) and closed at
    its end: Playwright's sync API allows one running instance per thread."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser):
    """A fresh browser profile (empty caches) whose requests may only go to 127.0.0.1; page errors and
    Content-Security-Policy violations fail the test."""
    context = browser.new_context(locale="es-ES", viewport={"width": 1280, "height": 900})
    outside = guard_loopback(context)
    errors = page_errors(context)
    yield context
    context.close()
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert errors == [], f"page errors: {errors}"


def open_analyze(context, base_url):
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("#edge-status[data-state=ready]", timeout=TIMEOUT_MS)
    return page


def analyze(page, name: str, data: bytes):
    """Upload one image through the file input and wait until both answers are shown."""
    page.evaluate("document.body.dataset.state = ''")
    page.set_input_files("#image-input", files=[{"name": name.replace("/", "_") + ".png", "mimeType": "image/png",
                                                 "buffer": data}])
    page.wait_for_selector("body[data-state=done]", timeout=TIMEOUT_MS)
    panels = {}
    for side in ("server", "edge"):
        panel = page.locator(f"#{side}-result")
        panels[side] = {"label": panel.get_attribute("data-label"),
                        "probabilities": json.loads(panel.get_attribute("data-probabilities") or "null")}
    return panels


def wait_until(page, predicate: str, timeout_s: float = TIMEOUT_MS / 1000):
    """Poll a JS predicate (page.wait_for_function would need an eval, which the page's CSP forbids)."""
    from tests.support import wait_until as poll

    poll(lambda: page.evaluate(predicate), timeout_s, f"waiting for {predicate}", interval=0.1)


def screenshot(page, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_upload_shows_label_cam_and_timings(context, base_url, photos):
    page = open_analyze(context, base_url)
    panels = analyze(page, "chelsea", photos["skimage/chelsea"].png_bytes())
    assert panels["server"]["label"] == "cat" and panels["edge"]["label"] == "cat"
    assert "gato" in page.locator("#server-label").inner_text()
    assert page.get_attribute("#cam-heat", "src").startswith("data:image/png;base64,")
    assert page.get_attribute("#cam-base", "src").startswith("data:image/png;base64,")
    assert page.locator("#explanation").is_visible() and page.locator("#disagreement").is_hidden()
    assert page.locator("#tags li").count() >= 5
    assert page.locator("#timings tbody tr").count() >= 5
    screenshot(page, "analyze")
    page.fill("#cam-opacity", "25")
    assert page.eval_on_selector("#cam-heat", "img => getComputedStyle(img).opacity") == "0.25"


# Runs in the page: decode image bytes, crop/resize and normalise them as each card says, with the page's module;
# the uint8 pixels and float32 inputs come back as base64 bytes.
MODEL_PIXELS_JS = """async (cases) => {
  const { decodePixels, modelPixels, normalize } = await import('/static/js/preprocess.js');
  const base64 = (array) => {
    const bytes = new Uint8Array(array.buffer);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  };
  const answers = [];
  for (const { bytes, type, input } of cases) {
    const blob = new Blob([Uint8Array.from(atob(bytes), c => c.charCodeAt(0))], {type});
    const pixels = modelPixels(await decodePixels(blob), input);
    answers.push({ pixels: base64(pixels), inputs: base64(normalize(pixels, input)) });
  }
  return answers;
}"""


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_browser_preprocessing_gives_pillows_pixels(context, base_url, photos, exported_registry):
    """Golden vectors: preprocess.js reproduces models/preprocess.py bit for bit on PNGs (pixels and float32
    inputs) — downscaled, upscaled, portrait (Pillow resizes it vertically first), crops whose box float32
    cannot hold, ImageNet mean/std that float32 cannot hold — and within JPEG decoder noise on a JPEG."""
    spec = exported_registry.card("animals")["input"]
    chelsea = photos["skimage/chelsea"].image
    imagenet = {**spec, "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
    cases = [(png(chelsea), "image/png", spec, 0),
             (png(chelsea.transpose(Image.Transpose.ROTATE_90)), "image/png", imagenet, 0),
             (png(chelsea), "image/png", {**spec, "size": 96, "crop_fraction": 1.0}, 0),
             (png(chelsea), "image/png", {**spec, "size": 128, "crop_fraction": 0.6}, 0),
             (png(photos["darknet/dog.jpg"].image.resize((61, 47))), "image/png", imagenet, 0),
             (Path("/usr/share/darknet/data/dog.jpg").read_bytes(), "image/jpeg", spec, 8)]
    page = context.new_page()
    page.goto(base_url + "/")
    got = page.evaluate(MODEL_PIXELS_JS, [{"bytes": base64.b64encode(data).decode(), "type": kind, "input": input}
                                          for data, kind, input, _ in cases])
    for (data, kind, input, tolerance), answer in zip(cases, got):
        want = to_model_pixels(load_image(data), input)
        pixels = np.frombuffer(base64.b64decode(answer["pixels"]), dtype=np.uint8).reshape(want.shape)
        assert int(np.abs(pixels.astype(int) - want).max()) <= tolerance, (kind, input)
        if tolerance == 0:
            inputs = np.frombuffer(base64.b64decode(answer["inputs"]), dtype=np.float32).reshape(want.shape)
            assert np.array_equal(inputs, normalize(want, input)), input


# Runs in the Analyze page: the page's worker model answers a canvas's pixels (transferred) as the same file.
CANVAS_JS = """async ({bytes, name}) => {
  const edgeModule = await import('/static/js/edge.js');
  const { decodePixels } = await import('/static/js/preprocess.js');
  const edge = await edgeModule.loadWorkerModel(name);
  const blob = new Blob([Uint8Array.from(atob(bytes), c => c.charCodeAt(0))], {type: 'image/png'});
  const image = await decodePixels(blob);
  const fromPixels = await edgeModule.classify(edge, image);
  const fromFile = await edgeModule.classify(edge, blob);
  const cam = await edgeModule.explain(edge, fromFile);
  return { fromPixels: fromPixels.probabilities, fromFile: fromFile.probabilities, transferred: image.data.byteLength === 0,
           cam: cam.values.length, pageHasTf: typeof tf !== 'undefined', worker: Boolean(edge.worker) };
}"""


def test_worker_answers_canvas_pixels_and_the_page_runs_no_tfjs(context, base_url, photos):
    """The Analyze page runs TF.js only in its Web Worker; canvas pixels move to it without a copy and give the
    file's answer; the CAM is computed when asked for."""
    page = open_analyze(context, base_url)
    got = page.evaluate(CANVAS_JS, {"bytes": base64.b64encode(photos["skimage/chelsea"].png_bytes()).decode(),
                                    "name": page.get_attribute("#main", "data-model")})
    assert got["fromPixels"] == got["fromFile"] and got["fromFile"]["cat"] > 0.5
    assert got["transferred"] and got["worker"] and not got["pageHasTf"] and got["cam"] == 49


def test_browser_cam_matches_the_server_cam(context, base_url, photos):
    """The CAM computed in the page from the TF.js feature map equals the server's (ONNX Runtime, numpy)."""
    page = open_analyze(context, base_url)
    for name in ("skimage/chelsea", "darknet/dog.jpg"):
        analyze(page, name, photos[name].png_bytes())
        edge = json.loads(page.get_attribute("#explanation", "data-edge-grid"))
        server = json.loads(page.get_attribute("#explanation", "data-server-grid"))
        assert len(edge) == len(server) == 49
        assert pearson(edge, server) > 0.99, name


def pearson(a: list[float], b: list[float]) -> float:
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    return cov / (sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b)) ** 0.5


# Runs in the page: hand an image to the drop zone (drag and drop) or to the document (paste).
DELIVER_JS = """async ({bytes, how}) => {
  const file = new File([Uint8Array.from(atob(bytes), c => c.charCodeAt(0))], 'photo.png', {type: 'image/png'});
  const transfer = new DataTransfer();
  transfer.items.add(file);
  document.body.dataset.state = '';
  if (how === 'drop') {
    document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
  } else {
    document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: transfer, bubbles: true}));
  }
}"""


def test_drop_and_paste_analyze_the_image(context, base_url, photos):
    page = open_analyze(context, base_url)
    for how, name, label in (("drop", "darknet/dog.jpg", "dog"), ("paste", "skimage/chelsea", "cat")):
        page.evaluate(DELIVER_JS, {"bytes": base64.b64encode(photos[name].png_bytes()).decode(), "how": how})
        page.wait_for_selector("body[data-state=done]", timeout=TIMEOUT_MS)
        assert page.get_attribute("#server-result", "data-label") == label, how
        assert page.get_attribute("#edge-result", "data-label") == label, how


def test_webcam_capture_is_analyzed(context, base_url):
    context.grant_permissions(["camera"])
    page = open_analyze(context, base_url)
    page.click("#camera-start")
    wait_until(page, "() => document.getElementById('camera').videoWidth > 0")
    page.evaluate("document.body.dataset.state = ''")
    page.click("#camera-capture")
    page.wait_for_selector("body[data-state=done]", timeout=TIMEOUT_MS)
    server, edge = (page.get_attribute(f"#{side}-result", "data-label") for side in ("server", "edge"))
    assert server in ("cat", "dog", "unknown") and edge == server


def test_phone_width_has_no_horizontal_scroll(browser, base_url):
    context = browser.new_context(locale="es-ES", viewport={"width": 375, "height": 740}, is_mobile=True)
    outside = guard_loopback(context)
    try:
        page = context.new_page()
        for path in ("/", "/network", "/models"):
            page.goto(base_url + path)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        screenshot(page, "models-phone")
    finally:
        context.close()
    assert outside == []


def test_coffee_is_unknown_in_both(context, base_url, photos):
    page = open_analyze(context, base_url)
    panels = analyze(page, "coffee", photos["skimage/coffee"].png_bytes())
    assert panels["server"]["label"] == panels["edge"]["label"] == "unknown"
    assert "desconocido" in page.locator("#edge-label").inner_text()


def test_edge_agrees_with_server_on_real_photos(context, base_url, photos):
    """Same card, same preprocessing: the browser's float16 TF.js model matches ONNX Runtime."""
    page = open_analyze(context, base_url)
    assert page.get_attribute("#edge-status", "data-source") == "network"
    worst = 0.0
    for name, photo in photos.items():
        panels = analyze(page, name, photo.png_bytes())
        server, edge = panels["server"], panels["edge"]
        assert edge["label"] == server["label"], name
        assert max(server["probabilities"], key=server["probabilities"].get) == \
            max(edge["probabilities"], key=edge["probabilities"].get), name
        worst = max(worst, *(abs(server["probabilities"][k] - edge["probabilities"][k]) for k in server["probabilities"]))
    assert worst < 0.02, worst


def test_offline_after_first_visit(browser, web_app, photos):
    """After one visit the Analyze page opens and classifies with the server gone."""
    context = browser.new_context(locale="es-ES")
    outside = guard_loopback(context)
    try:
        with live_server(web_app) as url:
            page = open_analyze(context, url)
            page.evaluate("async () => { await navigator.serviceWorker.ready; }")
            page.reload()
            page.wait_for_selector("#edge-status[data-state=ready]", timeout=TIMEOUT_MS)
            assert page.evaluate("navigator.serviceWorker.controller !== null")
        context.set_offline(True)
        page.reload()
        page.wait_for_selector("#edge-status[data-state=ready]", timeout=TIMEOUT_MS)
        assert page.get_attribute("#edge-status", "data-source") == "cache"
        panels = analyze(page, "chelsea", photos["skimage/chelsea"].png_bytes())
        assert panels["edge"]["label"] == "cat" and panels["server"]["label"] is None
        assert page.get_attribute("#cam-heat", "src").startswith("data:image/png")
        screenshot(page, "analyze-offline")
    finally:
        context.close()
    assert outside == []


def test_language_switch_changes_text_and_is_remembered(context, base_url):
    page = context.new_page()
    page.goto(base_url + "/")
    assert page.get_attribute("html", "lang") == "es"
    assert page.locator("nav .nav-link.active").inner_text() == "Analizar"
    page.click("#language-switch")
    page.wait_for_selector("html[lang=en]")
    assert page.locator("nav .nav-link.active").inner_text() == "Analyze"
    page.goto(base_url + "/models")
    assert page.locator("h1").inner_text() == "Models and versions"
    page.wait_for_selector("body[data-state=done]")
    assert "current" in page.locator("#versions").inner_text()


def test_network_page_shows_layers_and_feature_maps(context, base_url, photos):
    page = context.new_page()
    page.goto(base_url + "/network")
    page.wait_for_selector("#network-graph details", timeout=TIMEOUT_MS)
    parts = page.eval_on_selector_all("#network-graph details", "nodes => nodes.map(n => n.dataset.part)")
    assert parts[:2] == ["stem", "block0"] and "top" in parts and "head" in parts and len(parts) == 19
    assert "224×224" in page.locator("#network-summary").inner_text()
    page.set_input_files("#network-image", files=[{"name": "chelsea.png", "mimeType": "image/png",
                                                   "buffer": photos["skimage/chelsea"].png_bytes()}])
    page.wait_for_selector("body[data-state=done]", timeout=TIMEOUT_MS)
    assert page.locator("#feature-tiles canvas").count() == 16
    page.locator("#network-graph details").first.click()
    screenshot(page, "network")


def test_models_page_lists_versions_and_formats(context, base_url):
    page = context.new_page()
    page.goto(base_url + "/models")
    page.wait_for_selector("body[data-state=done]", timeout=TIMEOUT_MS)
    assert "v1" in page.locator("#versions").inner_text() and "actual" in page.locator("#versions").inner_text()
    formats = page.locator("#detail-formats").inner_text()
    assert all(fmt in formats for fmt in ("onnx_int8", "tflite_int8", "tfjs", "tfjs_uint8"))
    screenshot(page, "models")
