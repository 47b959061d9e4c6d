"""The model lessons' endpoints (app/lesson_models.py) on the tiny ONNX model: pruning, quantization, formats and
active learning answer with numbers that follow from the model's real files, and refuse bad input with 4xx.

The measurements the lessons draw (``web/lessons/measured/*.json``, written by benchmarks/bench_pruning.py and
benchmarks/bench_active.py) are checked for shape and plausibility."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import lesson_models
from models import atomic, real_data
from tests.conftest import serving_app



def chelsea() -> bytes:
    """scikit-image's real photo of a cat."""
    (photo,) = [f for f in real_data.cat_dog_files() if f.name == "skimage/chelsea"]
    return photo.path.read_bytes()


@pytest.fixture(scope="module")
def client(tiny_registry, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIIM_INSTANCE_PATH", str(tmp_path_factory.mktemp("instance")))
        app = serving_app({"MODELS_DIR": str(tiny_registry.root), "RATE_LIMIT_PREDICT": "10000 per minute"})
    return app.test_client()


@pytest.fixture(scope="module")
def head(tiny_registry):
    return dict(np.load(tiny_registry.file("animals", None, "head")))


def png(colour=(200, 120, 60), size=64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


def test_magnitude_pruning_zeroes_exactly_the_smallest_weights():
    kernel = np.random.default_rng(0).normal(size=(40, 25)).astype(np.float32)
    pruned = lesson_models.prune(kernel, 0.3)
    zeros = pruned == 0
    assert zeros.sum() == 300
    assert np.abs(kernel[zeros]).max() <= np.abs(kernel[~zeros]).min()
    assert np.array_equal(pruned[~zeros], kernel[~zeros])
    assert lesson_models.prune(kernel, 0.0) is kernel


def test_pruning_histograms_and_sizes_follow_the_served_head(client, head):
    body = client.get("/api/v1/lessons/pruning?sparsity=75").json
    kernel = head["kernel"]
    histogram = body["histogram"]
    assert sum(histogram["before"]) == kernel.size
    assert histogram["zeros_after"] == round(0.75 * kernel.size)
    assert sum(histogram["after"]) + histogram["zeros_after"] == kernel.size
    assert body["threshold"] == pytest.approx(np.sort(np.abs(kernel).ravel())[histogram["zeros_after"]], rel=1e-6)
    sweep = body["sweep"]
    assert [row["sparsity"] for row in sweep] == list(lesson_models.SPARSITIES)
    assert [row["zeros"] for row in sweep] == [round(s * kernel.size) for s in lesson_models.SPARSITIES]
    sizes = [row["gzip_bytes"] for row in sweep]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0] / 3  # zeros compress
    assert all(row["bytes"] == kernel.size * 4 for row in sweep)  # the raw file does not shrink


def test_pruning_tables_come_from_the_measurement(client):
    tables = client.get("/api/v1/lessons/pruning").json["tables"]
    stored = atomic.read_json(lesson_models.MEASURED / "pruning.json")
    assert (stored is None and tables == []) or tables[0]["table"] == stored["pruning"]["table"]


def test_an_unpruned_head_answers_as_the_served_model(client):
    served = client.post("/api/v1/predict?store=0", data={"image": (io.BytesIO(png()), "warm.png")}).json["results"][0]
    body = client.post("/api/v1/lessons/pruning", data={"image": (io.BytesIO(png()), "warm.png")}).json
    first = body["answers"][0]
    assert body["max_abs_dp_unpruned"] < 1e-3
    assert first["label"] == served["label"]
    assert [tag["index"] for tag in first["tags"]] == [tag["index"] for tag in served["tags"]]
    assert [answer["sparsity"] for answer in body["answers"]] == list(lesson_models.SPARSITIES)


def test_uint8_quantization_worked_out_on_the_head(client, head):
    body = client.get("/api/v1/lessons/quantization").json
    kernel = head["kernel"]
    q = body["uint8"]
    assert q["min"] == pytest.approx(min(kernel.min(), 0.0)) and q["max"] == pytest.approx(max(kernel.max(), 0.0))
    assert q["scale"] == pytest.approx((q["max"] - q["min"]) / 255)
    assert 0 <= q["zero_point"] <= 255 and q["nudged_min"] == pytest.approx(-q["zero_point"] * q["scale"])
    for sample in body["samples"]:
        value = float(kernel.ravel()[sample["index"]])
        assert sample["value"] == pytest.approx(value)
        assert sample["q"] == min(255, max(0, round(value / q["scale"]) + q["zero_point"]))
        assert sample["back"] == pytest.approx((sample["q"] - q["zero_point"]) * q["scale"], abs=1e-6)
    assert q["max_abs_error"] <= q["scale"] * 0.51 + 1e-6  # at most half a step (the nudged min adds a hair)
    assert 0.15 < q["mean_abs_error"] / q["scale"] < 0.35  # rounding errors spread over the step
    assert body["int8_mean_abs_error"]["per_channel"] <= body["int8_mean_abs_error"]["per_tensor"]
    assert body["tfjs_uint8"] is None  # the tiny model has no TF.js export
    assert {row["format"] for row in body["variants"]} == {"onnx"}


def test_the_real_model_quantized_as_its_tfjs_export_and_int8_onnx_agree(calibrated_registry, tmp_path, monkeypatch):
    """On the real exported model: the scale and minimum worked out here are those TF.js' uint8 export stored for
    the head kernel, and the int8 ONNX file answers a real photo like the float32 one."""
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path))
    client = serving_app({"MODELS_DIR": str(calibrated_registry.root)}).test_client()
    body = client.get("/api/v1/lessons/quantization").json
    assert body["tfjs_uint8"]["scale"] == pytest.approx(body["uint8"]["scale"], rel=1e-6)
    assert body["tfjs_uint8"]["min"] == pytest.approx(body["uint8"]["nudged_min"], rel=1e-5)
    formats = client.post("/api/v1/lessons/formats", data={"image": (io.BytesIO(chelsea()), "chelsea.png")}).json
    assert [answer["format"] for answer in formats["answers"]] == ["onnx", "onnx_int8"]
    assert formats["agreement"]["same_answer"] and formats["answers"][0]["label"] == "cat"
    assert formats["answers"][1]["bytes"] < formats["answers"][0]["bytes"] / 3
    assert formats["graph"]["summary"]["nodes"] > 50 and formats["parity"]["formats"]["onnx_int8"]


def test_formats_run_the_onnx_file_and_describe_it(client):
    served = client.post("/api/v1/predict?store=0", data={"image": (io.BytesIO(png()), "warm.png")}).json["results"][0]
    body = client.post("/api/v1/lessons/formats?repeats=2", data={"image": (io.BytesIO(png()), "warm.png")}).json
    (fp32,) = body["answers"]  # the tiny model has no int8 export
    assert fp32["format"] == "onnx" and fp32["label"] == served["label"] and fp32["runs"] == 2
    assert fp32["latency_ms"] > 0 and fp32["bytes"] > 0
    assert body["agreement"] is None
    assert [value["name"] for value in body["graph"]["inputs"]] == ["image"]
    assert {value["name"] for value in body["graph"]["outputs"]} >= {"probabilities", "embedding"}


def test_active_learning_curve_and_queue(client):
    stored = atomic.read_json(lesson_models.MEASURED / "active-learning.json")
    response = client.get("/api/v1/lessons/active-learning")
    if stored is None:
        assert response.status_code == 404 and response.json["error"]["code"] == "not_measured"
        return
    body = response.json
    assert body["curve"] == stored and body["measured_on_served_model"] is False  # measured on the real model
    queue = body["queue"]
    margins = [row["margin"] for row in queue]
    assert margins == sorted(margins, reverse=True) and len(queue) >= 10
    assert {row["truth"] for row in queue} == {"cat", "dog", "other"}


def test_measurements_are_plausible():
    active = atomic.read_json(lesson_models.MEASURED / "active-learning.json")
    if active is not None:
        labels = active["labels"]
        assert labels == sorted(labels) and len(set(labels)) == len(labels)
        for curve in active["accuracy"].values():
            assert len(curve) == len(labels) and all(0.1 < a <= 1 for a in curve)
        assert active["accuracy"]["random"][-1] > active["accuracy"]["random"][0]  # more labels help
    pruning = atomic.read_json(lesson_models.MEASURED / "pruning.json")
    if pruning is not None:
        rows = pruning["pruning"]["table"]
        assert all(abs(row["measured_sparsity"] - row["target_sparsity"]) < 0.05 for row in rows)
        assert all(row["gzip_ratio"] > 1 for row in rows) and 0 < pruning["pruning"]["baseline"]["test_accuracy"] <= 1


@pytest.mark.parametrize("method, url, data, status, code", [
    ("get", "/api/v1/lessons/pruning?sparsity=100", None, 400, "bad_param"),
    ("get", "/api/v1/lessons/pruning?sparsity=-1", None, 400, "bad_param"),
    ("get", "/api/v1/lessons/quantization?model=nope", None, 404, "unknown_model"),
    ("post", "/api/v1/lessons/pruning", {}, 400, "missing_field"),
    ("post", "/api/v1/lessons/formats?repeats=21", {"image": (io.BytesIO(png()), "a.png")}, 400, "bad_param"),
    ("post", "/api/v1/lessons/formats", {"image": (io.BytesIO(b"not an image"), "x.png")}, 400, "not_an_image"),
    ("post", "/api/v1/lessons/pruning", {"image": [(io.BytesIO(png()), "a.png"), (io.BytesIO(png()), "b.png")]}, 400,
     "too_many_images"),
])
def test_bad_input_is_a_4xx_json_error(client, method, url, data, status, code):
    response = getattr(client, method)(url, data=data)
    assert response.status_code == status and response.json["error"]["code"] == code, response.json

