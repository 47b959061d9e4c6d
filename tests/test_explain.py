"""Explanations on the real default model: CAM vs TensorFlow Grad-CAM, the API, quality flags, OpenAPI."""
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image, ImageFilter

from app import explain, quality
from models import anomaly
from models.preprocess import preprocess

OPENAPI = json.loads(open("app/openapi.json").read())


def post(client, png: bytes, query=""):
    return client.post(f"/api/v1/predict{query}", data={"image": [(io.BytesIO(png), "x.png")]},
                       content_type="multipart/form-data")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_data_url(url: str) -> Image.Image:
    assert re.match(r"^data:image/(png|jpeg);base64,", url)
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.mark.slow
@pytest.mark.parametrize("photo, target", [("skimage/chelsea", "cat"), ("darknet/dog.jpg", "dog"),
                                           ("skimage/chelsea", 281), ("darknet/dog.jpg", "cat")])
def test_cam_from_onnx_matches_tensorflow_gradcam(default_registry, photos, photo, target):
    """Grad-CAM (gradients by TensorFlow on model.keras) of the same score equals the numpy CAM."""
    import onnxruntime as ort

    from training.tf import keras, tf

    card = default_registry.card("animals")
    x = preprocess(photos[photo].image, card["input"])[None]
    session = ort.InferenceSession(str(default_registry.file("animals", None, "onnx")), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x})))
    head = dict(np.load(default_registry.file("animals", None, "head")))
    columns, weights = explain.target_columns(card, target, outputs["imagenet_probabilities"][0])
    cam = np.maximum(explain.class_activation_map(outputs["feature_map"][0], head["kernel"], columns, weights), 0)

    model = keras.models.load_model(default_registry.path("animals") / "model.keras", compile=False)
    grad_model = keras.Model(model.input, [model.get_layer("top_activation").output, model.get_layer("logits").output])
    with tf.GradientTape() as tape:
        conv, logits = grad_model(x, training=False)
        score = tf.reduce_sum(tf.gather(logits[0], columns) * weights)  # the explained score, weights fixed
    alpha = tf.reduce_mean(tape.gradient(score, conv)[0], axis=(0, 1))
    gradcam = tf.nn.relu(tf.reduce_sum(conv[0] * alpha, axis=-1)).numpy()

    a, b = (anomaly.upsample(m, card["input"]["size"]).ravel() for m in (cam, gradcam))
    r = np.corrcoef(a, b)[0, 1]
    print(f"{photo} {target}: Pearson r = {r:.6f}")
    assert r >= 0.99
    assert cam.max() > 0


@pytest.mark.slow
def test_predict_explains_the_predicted_class_and_any_other(client, photos):
    body = post(client, photos["skimage/chelsea"].png_bytes(), "?explain=1&store=0").get_json()
    (result,) = body["results"]
    assert result["label"] == "cat" and "anomalies" not in result
    explanation = result["explanation"]
    assert explanation["class"] == "cat" and explanation["method"] == "cam"
    assert decode_data_url(explanation["heatmap"]).format == "PNG"
    assert decode_data_url(explanation["overlay"]).size == (224, 224)
    assert decode_data_url(explanation["overlay"]).format == "JPEG"
    grid = np.array(explanation["grid"])
    assert grid.shape == (7, 7) and grid.max() == 1.0
    assert {c["colour"] for c in result["pixel_tags"]["colours"]} & {"brown", "orange"}
    other = post(client, photos["skimage/chelsea"].png_bytes(), "?explain=1&class=dog&store=0").get_json()
    assert other["results"][0]["explanation"]["class"] == "dog"
    assert not np.allclose(np.array(other["results"][0]["explanation"]["grid"]), grid)
    imagenet = post(client, photos["skimage/chelsea"].png_bytes(), "?explain=1&class=285&store=0").get_json()
    assert imagenet["results"][0]["explanation"]["class"] == {"imagenet_index": 285}
    lossless = post(client, photos["skimage/chelsea"].png_bytes(), "?explain=1&overlay=png&store=0").get_json()
    assert decode_data_url(lossless["results"][0]["explanation"]["overlay"]).format == "PNG"


@pytest.mark.slow
@pytest.mark.parametrize("query, code", [("?explain=maybe", "bad_param"), ("?explain=1&overlay=gif", "bad_param"),
                                         ("?explain=1&class=zebra", "unknown_class"),
                                         ("?explain=1&class=1000", "unknown_class")])
def test_bad_explain_parameters_are_400(client, photos, query, code):
    response = post(client, photos["skimage/coffee"].png_bytes(), query + "&store=0")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code


def flags(image: Image.Image, min_side: int = 112) -> set[str]:
    return {c["check"] for c in quality.checks(quality.measure(image), min_side) if c["flagged"]}


def test_quality_flags_on_real_and_damaged_photos(photos):
    chelsea = photos["skimage/chelsea"].image
    assert flags(chelsea) == set()
    assert flags(chelsea.filter(ImageFilter.GaussianBlur(4))) == {"blurry"}
    assert flags(Image.new("RGB", (300, 200))) == {"near_uniform", "underexposed", "low_contrast"}
    assert flags(Image.new("RGB", (1, 1), (90, 120, 200))) == {"tiny_resolution", "near_uniform", "low_contrast"}
    assert "overexposed" in flags(Image.eval(chelsea, lambda v: min(255, v + 150)))
    assert flags(photos["foolbox/cifar10_00_3.png"].image) == {"tiny_resolution"}


@pytest.mark.slow
def test_quality_in_the_api(client, photos):
    blurred = photos["skimage/chelsea"].image.filter(ImageFilter.GaussianBlur(4))
    result = post(client, png_bytes(blurred), "?anomaly=1&store=0").get_json()["results"][0]
    assert result["anomalies"]["quality"]["flags"] == ["blurry"]
    assert result["anomalies"]["out_of_distribution"]["available"] is False  # not calibrated
    black = post(client, png_bytes(Image.new("RGB", (64, 64))), "?anomaly=1&store=0").get_json()["results"][0]
    assert {"tiny_resolution", "near_uniform", "underexposed"} <= set(black["anomalies"]["quality"]["flags"])
    one_pixel = post(client, png_bytes(Image.new("RGB", (1, 1))), "?anomaly=1&store=0")
    assert one_pixel.status_code == 400 and one_pixel.get_json()["error"]["code"] == "image_too_small"


def test_openapi_describes_every_api_route(app):
    described = {path: set(ops) for path, ops in OPENAPI["paths"].items()}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:[a-z]+:)?([a-z0-9_]+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                if method.lower() not in described.get(path, ()):
                    missing.append(f"{method} {path}")
    assert not missing, f"routes missing from app/openapi.json: {missing}"
    assert app.test_client().get("/api/v1/openapi.json").get_json()["openapi"].startswith("3.1")


@pytest.mark.slow
def test_network_needs_calibration(client):
    response = client.get("/api/v1/models/animals/network")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_calibrated"
