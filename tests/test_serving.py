"""Serving from ONNX Runtime: fp32 or int8 per model, one session.run per multi-image request, a corrupt
file answered with 503 JSON, and promotion during a burst of requests without a single error."""
from __future__ import annotations

import io
import os
import shutil
import threading

import numpy as np
import pytest

from app.inference import ModelStore
from models.registry import Registry
from tests.conftest import serving_app


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


def test_int8_falls_back_to_fp32_until_exported_and_bad_precision_is_refused(default_registry):
    store = ModelStore(default_registry, default_precision="int8")
    assert store.get("animals").fmt == "onnx"  # no `riim export` yet: the fp32 file is served
    with pytest.raises(ValueError, match="int4"):
        ModelStore(default_registry, precision={"animals": "int4"})


def test_multi_image_request_is_one_session_run(app, photos):
    loaded = app.extensions["riim.models"].get("animals")
    calls = []
    real_run = loaded.session.run
    loaded.session = type("Counting", (), {"run": lambda self, *a: calls.append(a[1]["image"].shape) or real_run(*a),
                                            "get_outputs": lambda self: real_run.__self__.get_outputs()})()
    answer = post(app.test_client(), photos, "skimage/chelsea", "darknet/dog.jpg", "skimage/coffee").get_json()
    assert calls == [(3, 224, 224, 3)], answer
    single = post(app.test_client(), photos, "skimage/coffee").get_json()["results"][0]
    batched = answer["results"][2]
    assert batched["label"] == single["label"] == "unknown"
    assert np.allclose(list(batched["probabilities"].values()), list(single["probabilities"].values()), atol=1e-5)


@pytest.mark.slow
def test_corrupt_model_file_is_a_503_json_error(exported_registry, photos, tmp_path, monkeypatch):
    registry = Registry(tmp_path / "store")
    shutil.copytree(exported_registry.root, registry.root)
    path = registry.path("animals") / "model.int8.onnx"
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\xff\xff\xff\xff")
    app = make_app(registry, tmp_path, monkeypatch, DEFAULT_PRECISION="int8")
    response = post(app.test_client(), photos, "skimage/chelsea")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "model_unavailable" and "model.int8.onnx" in error["message"]


def test_promotion_during_a_burst_never_errors(default_registry, photos, tmp_path, monkeypatch):
    """Two versions; 4 threads send requests while the main thread promotes back and forth."""
    registry = Registry(tmp_path / "store")
    source = default_registry.path("animals")
    card = default_registry.card("animals")
    for _ in range(2):
        with registry.publish("animals", {k: v for k, v in card.items() if k not in ("name", "version", "created")}) as draft:
            for entry in card["files"].values():
                shutil.copy(source / entry["path"], draft.dir / entry["path"])
            draft.card["files"] = {fmt: entry["path"] for fmt, entry in card["files"].items()}
    app = make_app(registry, tmp_path, monkeypatch)
    statuses, versions, stop = [], set(), threading.Event()

    def client_loop():
        client = app.test_client()
        while not stop.is_set():
            response = post(client, photos, "skimage/chelsea")
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert response.get_json()["results"][0]["label"] == "cat"
                versions.add(response.get_json()["model"]["version"])

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(6):
            registry.promote("animals", "v2" if round_ % 2 == 0 else "v1")
            while len(statuses) < 4 * (round_ + 1):
                threading.Event().wait(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses and set(statuses) == {200}
    assert versions == {"v1", "v2"}
