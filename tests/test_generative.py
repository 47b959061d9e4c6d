"""The autoencoder and the GAN end to end: a tiny config of each trains on real data → publish → ONNX (+ TF.js for
the generator) → served by ONNX Runtime through /api/v1 → the lessons answer in Chromium; every bad input to the
two endpoints is a 4xx."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from models.generative import LATENT_LIMIT, MAX_SAMPLES, latents, reconstruction_errors, to_grey
from models.registry import Registry
from tests import tiny_model
from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
from tests.conftest import serving_app

TINY_AE = dict(train_images=512, validation_images=256, test_images=256, epochs=1, map_points=60)
TINY_GAN = dict(images=512, epochs=2, samples_per_epoch=4, quality_samples=100)


def png(pixels: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    """A registry with a tiny autoencoder (Fashion-MNIST) and a tiny GAN (MNIST digits), trained here."""
    from cli import generative
    from training.autoencoder import AutoencoderConfig
    from training.gan import GanConfig

    registry = Registry(tmp_path_factory.mktemp("generative-registry"))
    tiny_model.publish(registry)  # "animals": the image model whose embeddings the paradigms lesson uses
    generative.train_autoencoder(registry, AutoencoderConfig(**TINY_AE), "fashion-autoencoder", evaluate=False,
                                 tfjs=False)
    generative.train_gan(registry, GanConfig(**TINY_GAN), "digits-gan")
    return registry


@pytest.fixture(scope="module")
def app(registry, tmp_path_factory):
    import os

    from cli import paradigms

    from training.real_photos import ood_photos

    instance = tmp_path_factory.mktemp("instance")
    for i, photo in enumerate(ood_photos()[:6]):  # the class's uploads, as the app stores them
        (instance / "uploads" / f"{i:02d}").mkdir(parents=True)
        (instance / "uploads" / f"{i:02d}" / f"{i:02d}.png").write_bytes(photo.png_bytes())
    paradigms.run(registry, "animals", 300, 100, [0], [20, 100, 200], instance / "cache", instance / "paradigms.json",
                  instance / "uploads")
    before = os.environ.get("RIIM_INSTANCE_PATH")
    os.environ["RIIM_INSTANCE_PATH"] = str(instance)  # read once by create_app
    try:
        application = serving_app({"MODELS_DIR": str(registry.root), "RATE_LIMIT_PREDICT": "10000 per minute"})
    finally:
        if before is None:
            del os.environ["RIIM_INSTANCE_PATH"]
        else:
            os.environ["RIIM_INSTANCE_PATH"] = before
    return application


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def fashion():
    from training.importers import fashion_mnist_arrays

    images, labels = fashion_mnist_arrays("test")
    return images[:4], labels[:4]


def test_cards_are_valid_and_exports_match_keras(registry):
    ae = registry.card("fashion-autoencoder")
    gan = registry.card("digits-gan")
    assert ae["task"] == "image-reconstruction" and gan["task"] == "image-generation"
    assert {"onnx", "keras", "latent_map"} <= set(ae["files"]) and {"onnx", "tfjs", "samples"} <= set(gan["files"])
    for card in (ae, gan):
        assert max(card["parity"]["onnx_fp32_vs_keras"]["max_abs_diff"].values()) < 1e-4
    assert len(gan["metrics"]["losses"]["generator"]) == TINY_GAN["epochs"] == gan["samples"]["epochs"]
    samples = Image.open(registry.file("digits-gan", None, "samples"))
    assert samples.size == (28 * TINY_GAN["samples_per_epoch"], 28 * TINY_GAN["epochs"])
    quality = gan["metrics"]["quality"]
    assert quality["classifier_accuracy"] > 0.8  # the judge itself reads real digits well
    latent_map = json.loads(registry.file("fashion-autoencoder", None, "latent_map").read_text())
    assert len(latent_map["pca"]) == len(latent_map["tsne"]) == len(latent_map["labels"]) == TINY_AE["map_points"]


def test_to_grey_keeps_28_pixel_grey_images_and_shrinks_photos():
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28))
    assert np.array_equal(to_grey(Image.fromarray(pixels.astype(np.uint8), "L")) * 255, pixels)
    photo = Image.new("RGB", (300, 100), (255, 0, 0))
    photo.paste((0, 0, 255), (100, 0, 200, 100))  # the centred square is blue
    assert to_grey(photo).shape == (28, 28) and np.allclose(to_grey(photo), 0.114 * 255 // 1 / 255, atol=0.01)


def test_reconstruct_answers_with_the_served_onnx_model(client, fashion, registry):
    images, _ = fashion
    response = client.post("/api/v1/autoencoder/reconstruct",
                           data={"image": [(io.BytesIO(png(image)), f"f{i}.png") for i, image in enumerate(images)]})
    assert response.status_code == 200, response.json
    body = response.json
    card = registry.card("fashion-autoencoder")
    assert body["threshold"] == card["anomaly"]["threshold"] and body["threshold_source"] == "card"
    import onnxruntime as ort

    session = ort.InferenceSession(str(registry.file("fashion-autoencoder", None, "onnx")))
    batch = (images / 255.0).astype(np.float32)[..., None]
    expected = reconstruction_errors(batch, session.run(["reconstruction"], {"image": batch})[0])
    assert [r["error"] for r in body["results"]] == pytest.approx(expected, abs=1e-5)
    for result in body["results"]:
        assert result["unusual"] == (result["error"] > body["threshold"])
        assert result["reconstruction"].startswith("data:image/png;base64,")
    everything = client.post("/api/v1/autoencoder/reconstruct?threshold=0",
                             data={"image": (io.BytesIO(png(images[0])), "a.png")}).json
    assert everything["results"][0]["unusual"] and everything["threshold_source"] == "query"


def test_gan_samples_are_reproducible_and_follow_the_latent(client, registry):
    first = client.post("/api/v1/gan/sample", json={"n": 3, "seed": 7}).json
    again = client.post("/api/v1/gan/sample", json={"n": 3, "seed": 7}).json
    assert first["images"] == again["images"] and len(first["images"]) == 3
    dim = registry.card("digits-gan")["latent"]["dim"]
    assert np.allclose(first["latent"], latents(3, dim, 7), atol=1e-4)
    given = client.post("/api/v1/gan/sample", json={"latent": first["latent"][0]}).json
    assert given["images"][0] == first["images"][0] and given["seed"] is None
    assert client.post("/api/v1/gan/sample").json["n"] == 8  # no body: the defaults


@pytest.mark.parametrize("query, files, status, code", [
    ("", None, 400, "missing_field"),
    ("", b"not an image", 400, "not_an_image"),
    ("?threshold=abc", "png", 400, "bad_param"),
    ("?threshold=-1", "png", 400, "bad_param"),
    ("?threshold=nan", "png", 400, "bad_param"),
    ("?threshold=inf", "png", 400, "bad_param"),
    ("?model=digits-gan", "png", 404, "unknown_model"),
    ("?model=nope", "png", 404, "unknown_model"),
])
def test_reconstruct_bad_input_is_a_4xx(client, query, files, status, code):
    data = {}
    if files is not None:
        data["image"] = (io.BytesIO(png(np.zeros((28, 28))) if files == "png" else files), "x.png")
    response = client.post(f"/api/v1/autoencoder/reconstruct{query}", data=data)
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


@pytest.mark.parametrize("body, code", [
    ({"n": 0}, "bad_param"), ({"n": MAX_SAMPLES + 1}, "bad_param"), ({"n": "3"}, "bad_param"), ({"n": True}, "bad_param"),
    ({"seed": -1}, "bad_param"), ({"seed": 2**32}, "bad_param"), ({"seed": 1.5}, "bad_param"),
    ({"latent": [0.0] * 3}, "bad_latent"), ({"latent": []}, "bad_latent"), ({"latent": "zero"}, "bad_latent"),
    ({"latent": [[0.0] * 16, [0.0] * 15]}, "bad_latent"), ({"latent": [LATENT_LIMIT + 1] + [0.0] * 15}, "bad_latent"),
    ({"latent": [None] * 16}, "bad_latent"), ({"latent": [[0.0] * 16] * (MAX_SAMPLES + 1)}, "bad_latent"),
    ({"colour": 1}, "unknown_param"), ([1, 2], "bad_param"),
])
def test_gan_bad_input_is_a_400(client, body, code):
    response = client.post("/api/v1/gan/sample", json=body)
    assert (response.status_code, response.json["error"]["code"]) == (400, code)


def test_gan_rejects_non_json_and_nan(client):
    for data in ("{not json", '{"latent": [NaN' + ", 0" * 15 + "]}"):
        response = client.post("/api/v1/gan/sample", data=data, content_type="application/json")
        assert response.status_code == 400


def test_paradigms_results_are_404_until_computed(client, app, tmp_path, monkeypatch):
    assert client.get("/api/v1/paradigms").json["data"]["pool"] == 300
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    response = client.get("/api/v1/paradigms")
    assert (response.status_code, response.json["error"]["code"]) == (404, "paradigms_not_computed")


LESSONS = ("paradigms", "autoencoders", "gans")


def test_lessons_answer_in_the_browser(app):
    """Each lesson's demo and exercise finish in real Chromium with the served models: the paradigms chart,
    the autoencoder through the API, the GAN's generator run by TF.js in the page (its latency measured)."""
    shots = ARTIFACTS / "lessons"
    shots.mkdir(parents=True, exist_ok=True)
    found = {}
    with live_server(app) as base, chromium() as browser:
        for lang, width, height in (("es", 1366, 900), ("en", 390, 844)):
            context = browser.new_context(viewport={"width": width, "height": height})
            outside, errors = guard_loopback(context), page_errors(context)
            page = context.new_page()
            for slug in LESSONS:
                page.goto(f"{base}/learn/{slug}?quick=1&lang={lang}")
                page.wait_for_function("""() => { const marks = [...document.querySelectorAll('[data-state]')];
                    return marks.length >= 2 && marks.every((m) => ['done', 'ready', 'error'].includes(m.dataset.state)); }""",
                                       timeout=60_000)
                states = page.eval_on_selector_all("[data-state]", "(marks) => marks.map((m) => m.dataset.state)")
                assert "error" not in states, page.inner_text("main")[:2000]
                found[slug, lang] = json.loads(page.get_attribute("[data-result]", "data-result"))
                page.screenshot(path=str(shots / f"{slug}-{lang}-{width}.png"), full_page=True)
            assert outside == [] and errors == []
            context.close()
    assert 0 < found["gans", "es"]["latency_p50_ms"] < 2000
    assert 0 <= found["autoencoders", "en"]["normal_error"] <= 1
    assert 0 <= found["paradigms", "es"]["supervised"] <= 1
