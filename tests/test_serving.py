"""Serving from ONNX Runtime: what is served equals the network computed in numpy, fp32 or int8 per model,
one session.run per multi-image request, a corrupt file answered with 503 JSON, and promotion during a
burst of requests without a single error. Serving mechanics run on the tiny model (tests/tiny_model.py)."""
from __future__ import annotations

import io
import os
import shutil
import threading

import numpy as np
import pytest
from PIL import ExifTags, Image

from app.inference import LoadedModel, ModelCache
from models.card import served_format
from models.preprocess import draft_side_for, load_image, preprocess_batch
from models.registry import Registry
from tests import tiny_model
from tests.conftest import serving_app
from tests.support import wait_until


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


def make_app(registry, tmp_path, monkeypatch, **config):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    return serving_app({"MODELS_DIR": str(registry.root), "RATELIMIT_ENABLED": False, **config})


def post(client, photos, *names, **query):
    files = [(io.BytesIO(photos[name].png_bytes()), f"{name.split('/')[-1]}.png") for name in names]
    return client.post("/api/v1/predict", query_string={"store": 0, **query}, data={"image": files},
                       content_type="multipart/form-data")


@pytest.mark.slow
@pytest.mark.parametrize("precision, fmt", [("fp32", "onnx"), ("int8", "onnx_int8")])
def test_precision_is_chosen_per_model(exported_registry, photos, tmp_path, monkeypatch, precision, fmt):
    app = make_app(exported_registry, tmp_path, monkeypatch, MODEL_PRECISION={"animals": precision})
    answer = post(app.test_client(), photos, "skimage/chelsea", "darknet/dog.jpg").get_json()
    assert answer["model"]["format"] == fmt
    assert [r["label"] for r in answer["results"]] == ["cat", "dog"]


@pytest.mark.slow
def test_by_default_int8_is_served_when_its_decisions_match_fp32(exported_registry, photos, tmp_path, monkeypatch):
    card = exported_registry.card("animals")
    expected = served_format(card)
    assert expected["rule"] == "auto" and expected["format"] == (
        "onnx_int8" if card["parity"]["report"]["formats"]["onnx_int8"]["answer_agreement"] >= 0.99 else "onnx")
    client = make_app(exported_registry, tmp_path, monkeypatch).test_client()
    assert post(client, photos, "skimage/chelsea").get_json()["model"]["format"] == expected["format"]
    info = next(m for m in client.get("/api/v1/model-info").get_json()["models"] if m["name"] == "animals")
    assert info["serving"] == expected


def test_the_auto_rule_needs_measured_decision_agreement():
    card = {"files": {"onnx": {}, "onnx_int8": {}}, "parity": {"report": {
        "images": {"total": 20}, "formats": {"onnx_int8": {"answer_agreement": 1.0}}}}}
    assert served_format(card) == {"format": "onnx_int8", "precision": "int8", "rule": "auto",
                                        "decision_agreement": 1.0, "minimum": 0.99, "images": 20}
    card["parity"]["report"]["formats"]["onnx_int8"]["answer_agreement"] = 0.95  # 1 photo in 20 changes answer
    assert served_format(card)["format"] == "onnx" and served_format(card, "int8")["format"] == "onnx_int8"
    assert served_format({"files": card["files"]})["format"] == "onnx"  # an int8 file never measured
    assert served_format({"files": {"onnx": {}}}, "int8")["format"] == "onnx"
    with pytest.raises(ValueError, match="int4"):
        served_format(card, "int4")


def test_served_answers_are_the_network_computed_in_numpy(app, photos):
    """ONNX Runtime behind the API gives what an independent numpy forward pass of the same weights gives:
    probabilities, the card's decision and the top-5 tags."""
    card = app.extensions["riim.models"].get("animals").card
    names = ["skimage/chelsea", "skimage/rocket", "skimage/camera"]
    answer = post(app.test_client(), photos, *names).get_json()
    expected = tiny_model.forward(preprocess_batch([photos[name].image for name in names], card["input"]),
                                  tiny_model.weights())
    assert len(answer["results"]) == len(names)
    for result, probabilities, imagenet in zip(answer["results"], expected["probabilities"],
                                               expected["imagenet_probabilities"]):
        assert list(result["probabilities"].values()) == pytest.approx(probabilities, abs=1e-5)
        assert [tag["index"] for tag in result["tags"]] == list(np.argsort(-imagenet, kind="stable")[:5])
    labels = [result["label"] for result in answer["results"]]
    assert labels == tiny_model.labels([photos[name].image for name in names])
    assert len(set(labels)) == 3, labels  # cat, dog and unknown: the tiny model's answers vary


def test_int8_falls_back_to_fp32_until_exported_and_bad_precision_is_refused(tiny_registry):
    cache = ModelCache(tiny_registry, default_precision="int8")
    assert cache.get("animals").fmt == "onnx"  # no `riim export` yet: the fp32 file is served
    with pytest.raises(ValueError, match="int4"):
        ModelCache(tiny_registry, precision={"animals": "int4"})


def test_multi_image_request_is_one_session_run(app, photos):
    loaded = app.extensions["riim.models"].get("animals")
    calls = []
    real_run = loaded.session.run
    loaded.session = type("Counting", (), {"run": lambda self, *a: calls.append(a[1]["image"].shape) or real_run(*a),
                                            "get_outputs": lambda self: real_run.__self__.get_outputs()})()
    answer = post(app.test_client(), photos, "skimage/chelsea", "darknet/dog.jpg", "skimage/coffee").get_json()
    size = loaded.card["input"]["size"]
    assert calls == [(3, size, size, 3)], answer
    assert loaded.card["outputs"]["feature_map"] not in loaded.answer_outputs  # only what the answer reads
    for index, name in enumerate(["skimage/chelsea", "darknet/dog.jpg", "skimage/coffee"]):
        single = post(app.test_client(), photos, name).get_json()["results"][0]
        batched = answer["results"][index]
        assert batched["label"] == single["label"]
        assert np.allclose(list(batched["probabilities"].values()), list(single["probabilities"].values()), atol=1e-5)
    assert len(calls) == 4


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_optimised_graph_is_written_once_and_answers_the_same(exported_registry, photos, tmp_path, precision):
    version = exported_registry.resolve("animals")
    batch = preprocess_batch([photos[name].image for name in ("skimage/chelsea", "darknet/dog.jpg", "skimage/coffee")],
                             exported_registry.card("animals")["input"])
    plain = LoadedModel.load(exported_registry, "animals", version, precision=precision)
    first = LoadedModel.load(exported_registry, "animals", version, precision=precision, cache_dir=tmp_path)
    (written,) = tmp_path.glob("*.onnx")
    stamp = written.stat().st_mtime_ns
    again = LoadedModel.load(exported_registry, "animals", version, precision=precision, cache_dir=tmp_path)
    assert written.stat().st_mtime_ns == stamp and written.name.startswith(plain.card["files"][plain.fmt]["sha256"])
    expected = plain.run(batch)
    for loaded in (first, again):
        outputs = loaded.run(batch)
        for name, values in expected.items():
            assert np.allclose(outputs[name], values, atol=1e-4), name
        assert [r["label"] for r in loaded.results(outputs)] == [r["label"] for r in plain.results(expected)]


@pytest.mark.slow
def test_a_large_jpeg_is_decoded_smaller_with_the_same_answer(exported_registry, photos):
    """Pillow's draft mode (DCT scaling) on a 12-megapixel class photo: 1/4 of the pixels decoded, the full
    upright size kept for storing, the same decision and nearly the same probabilities as a full decode."""
    model = LoadedModel.load(exported_registry, "animals", exported_registry.resolve("animals"), precision="fp32")
    spec = model.card["input"]
    for name in ("skimage/chelsea", "darknet/dog.jpg", "skimage/coffee"):
        image = photos[name].image
        scale = 4000 / max(image.size)
        large = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = 6  # a phone held upright
        out = io.BytesIO()
        large.save(out, "JPEG", quality=92, exif=exif)
        full, drafted = load_image(out.getvalue()), load_image(out.getvalue(), draft_side=draft_side_for(spec))
        assert drafted.info["size"] == full.size == (large.height, large.width)
        assert drafted.width * drafted.height <= full.width * full.height / 4
        assert min(drafted.size) >= draft_side_for(spec)
        (expected, answer) = model.results(model.run(preprocess_batch([full, drafted], spec)))
        assert answer["label"] == expected["label"], name
        assert max(abs(answer["probabilities"][k] - p) for k, p in expected["probabilities"].items()) < 0.02, name


def test_corrupt_model_file_is_a_503_json_error(tiny_registry, photos, tmp_path, monkeypatch):
    registry = Registry(tmp_path / "store")
    shutil.copytree(tiny_registry.root, registry.root)
    path = registry.path("animals") / "model.onnx"
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\xff\xff\xff\xff")
    app = make_app(registry, tmp_path, monkeypatch)
    response = post(app.test_client(), photos, "skimage/chelsea")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "model_unavailable" and "model.onnx" in error["message"]


def test_promotion_during_a_burst_never_errors(tiny_registry, photos, tmp_path, monkeypatch):
    """Two versions; 4 threads send requests while the main thread promotes back and forth. The threads
    only record what they got; every check is made here, and every wait has a deadline."""
    registry = Registry(tmp_path / "store")
    source = tiny_registry.path("animals")
    card = tiny_registry.card("animals")
    for _ in range(2):
        with registry.publish("animals", {k: v for k, v in card.items() if k not in ("name", "version", "created")}) as draft:
            for entry in card["files"].values():
                shutil.copy(source / entry["path"], draft.dir / entry["path"])
            draft.card["files"] = {fmt: entry["path"] for fmt, entry in card["files"].items()}
    app = make_app(registry, tmp_path, monkeypatch)
    answers, errors, stop = [], [], threading.Event()  # list.append is atomic

    def client_loop():
        client = app.test_client()
        try:
            while not stop.is_set():
                response = post(client, photos, "skimage/chelsea")
                body = response.get_json()
                answers.append((response.status_code, body["results"][0]["label"] if response.status_code == 200
                                else body, body.get("model", {}).get("version")))
        except Exception as error:  # noqa: BLE001 — reported by the main thread
            errors.append(repr(error))

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(6):
            registry.promote("animals", "v2" if round_ % 2 == 0 else "v1")
            seen = len(answers)
            wait_until(lambda: len(answers) >= seen + 4 or errors, 60,
                       lambda: f"round {round_}: {len(answers) - seen} answers since the promotion, errors {errors}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a client thread did not stop"
    assert errors == []
    (expected,) = tiny_model.labels([photos["skimage/chelsea"].image])
    assert {(status, label) for status, label, _ in answers} == {(200, expected)}, answers
    assert {version for _, _, version in answers} == {"v1", "v2"}
