"""The lessons' data endpoints (app/lesson_data.py) on the tiny real ONNX model and real bundled data: sample
photos, embeddings, the augmentation recipe (the very pipeline training builds), Fashion-MNIST embeddings
with their cache, learning curves from the registry, and a 4xx JSON answer for every bad input."""
from __future__ import annotations

import base64
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from app import lesson_data
from models import augment_recipe, real_data
from models.preprocess import preprocess_batch, to_model_pixels
from models.registry import Registry
from models.training_config import AugmentConfig
from tests import tiny_model
from tests.conftest import serving_app
from training import augment as training_augment

CURVES = {"head": {"loss": [1.0, 0.6], "accuracy": [0.5, 0.8], "val_loss": [1.1, 0.9], "val_accuracy": [0.4, 0.6]},
          "finetune": {"loss": [0.5], "accuracy": [0.9], "val_loss": [0.8], "val_accuracy": [0.7]}}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """The tiny model as the current "animals" v1, plus a v2 (not promoted) whose card holds curves."""
    registry = Registry(tmp_path_factory.mktemp("lesson-registry"))
    tiny_model.publish(registry)
    w = tiny_model.weights()
    card = tiny_model.card(w) | {"metrics": {"curves": CURVES}}
    with registry.publish("animals", card, promote=False) as draft:
        onnx.save(tiny_model.graph(w), str(draft.dir / "model.onnx"))
        shutil.copy(tiny_model.LABELS_FILE, draft.dir / tiny_model.LABELS_FILE.name)
        draft.card["files"] = {"onnx": "model.onnx", "imagenet_labels": tiny_model.LABELS_FILE.name}
    return registry


@pytest.fixture(scope="module")
def app(registry, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIIM_INSTANCE_PATH", str(tmp_path_factory.mktemp("lesson-instance")))
        return serving_app({"MODELS_DIR": str(registry.root), "RATELIMIT_ENABLED": False})


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def decoded(array: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(array["data"]), dtype=array["dtype"]).reshape(array["shape"])


def png(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    return response.json["error"]["code"]


def test_sample_photos_are_the_real_bundled_files(client):
    photos = client.get("/api/v1/lessons/samples").json["photos"]
    files = {photo.name: photo for photo in real_data.photo_files()}
    assert [p["name"] for p in photos] == list(files)
    assert {p["label"] for p in photos} == {"cat", "dog", "other"}
    chelsea = client.get(next(p["url"] for p in photos if p["name"] == "skimage/chelsea"))
    assert chelsea.data == files["skimage/chelsea"].path.read_bytes()
    assert error_code(client.get("/api/v1/lessons/samples/skimage/nope"), 404) == "unknown_sample"
    assert error_code(client.get("/api/v1/lessons/samples/../../etc/passwd"), 404) in ("unknown_sample", "not_found")


def test_embeddings_are_the_served_models_embedding_output(client):
    files = real_data.cat_dog_files()[:2]
    response = client.post("/api/v1/lessons/embeddings",
                           data={"image": [(io.BytesIO(f.path.read_bytes()), f.path.name) for f in files]})
    assert response.status_code == 200, response.json
    assert response.json["model"] == {"name": "animals", "version": "v1", "output": "embedding"}
    images = [Image.open(f.path).convert("RGB") for f in files]
    expected = tiny_model.forward(preprocess_batch(images, tiny_model.INPUT), tiny_model.weights())["embedding"]
    np.testing.assert_allclose(decoded(response.json["embeddings"]), expected, atol=1e-4)
    assert error_code(client.post("/api/v1/lessons/embeddings", data={}), 400) == "missing_field"
    bad = {"image": [(io.BytesIO(b"not an image"), "x.png")]}
    assert error_code(client.post("/api/v1/lessons/embeddings", data=bad), 400) == "not_an_image"


def test_the_recipe_is_the_pipeline_training_builds():
    config = AugmentConfig(max_rotate=30.0, blur=0.4)
    pipeline = training_augment.pipeline(config, 64, seed=3)
    assert [type(t).__name__ for t in pipeline.transforms] == [s.transform for s in augment_recipe.steps(config, 64)]
    assert [t.p for t in pipeline.transforms] == [getattr(config, s.probability) for s in augment_recipe.steps(config, 64)]
    assert pipeline.transforms[1].rotate == (-30.0, 30.0)  # Affine reads max_rotate from the config


def test_augmented_samples_are_what_training_would_see(client):
    settings = {"horizontal_flip": 1.0, "affine": 1.0, "max_rotate": 40.0, "noise": 0.0}
    chelsea = real_data.cat_dog_files()[0].path
    response = client.post("/api/v1/lessons/augment", data={"image": [(io.BytesIO(chelsea.read_bytes()), "chelsea.png")],
                                                            "count": "4", "seed": "7",
                                                            **{name: str(value) for name, value in settings.items()}})
    assert response.status_code == 200, response.json
    body = response.json
    image = Image.open(chelsea).convert("RGB")
    pixels = to_model_pixels(image, tiny_model.INPUT)
    np.testing.assert_array_equal(png(body["original"]), pixels)
    training = training_augment.pipeline(AugmentConfig(**settings), tiny_model.INPUT["size"], seed=7)
    for data_url, fired in zip(body["samples"], body["applied"], strict=True):
        np.testing.assert_array_equal(png(data_url), training(image=pixels)["image"])
        assert {"horizontal_flip", "affine"} <= set(fired) and "noise" not in fired
    assert body["config"]["max_rotate"] == 40.0 and body["steps"][1]["args"]["rotate"] == [-40.0, 40.0]


def test_upload_augmented_and_augmentation_errors(client, monkeypatch):
    upload = real_data.cat_dog_files()[-1].path
    ok = client.post("/api/v1/lessons/augment", data={"image": [(io.BytesIO(upload.read_bytes()), "dog.jpg")],
                                                      "count": "2"})
    assert ok.status_code == 200 and len(ok.json["samples"]) == 2
    post = lambda **fields: client.post("/api/v1/lessons/augment", data={
        "image": [(io.BytesIO(upload.read_bytes()), "dog.jpg")], **fields})
    assert "augment.affine" in post(affine="3").json["error"]["message"]
    assert error_code(post(affine="3"), 400) == "bad_config"
    assert error_code(post(max_rotate="-1"), 400) == "bad_config"
    assert error_code(post(affine="x"), 400) == "bad_param"
    assert error_code(post(affine="nan"), 400) == "bad_param"
    assert error_code(post(count="17"), 400) == "bad_param"
    assert error_code(post(seed="-1"), 400) == "bad_param"
    two = {"image": [(io.BytesIO(upload.read_bytes()), "a.jpg"), (io.BytesIO(upload.read_bytes()), "b.jpg")]}
    assert error_code(client.post("/api/v1/lessons/augment", data=two), 400) == "too_many_images"
    assert error_code(client.post("/api/v1/lessons/augment", data={}), 400) == "missing_field"
    monkeypatch.setitem(sys.modules, "albumentations", None)  # a serving-only install
    assert error_code(post(), 503) == "augment_unavailable"


def test_recipe_view_lists_steps_and_ranges(client):
    body = client.get("/api/v1/lessons/augment/recipe").json
    assert [s["name"] for s in body["steps"]] == [s.name for s in augment_recipe.steps(AugmentConfig(), 32)]
    assert body["settings"]["max_rotate"] == {"default": 15.0, "low": 0.0, "high": 180.0}
    assert body["size"] == tiny_model.INPUT["size"]


def test_fashion_rows_are_real_balanced_and_cached(client, app):
    url = "/api/v1/lessons/fashion?split=train&start=10&count=20"
    first = client.get(url).json
    images, labels = real_data.fashion_mnist_arrays("train")
    assert first["labels"] == list(range(10)) * 2  # class round-robin: any prefix is balanced
    rows = [np.flatnonzero(labels == label)[1 + i // 10] for i, label in enumerate(first["labels"])]
    np.testing.assert_array_equal(decoded(first["pixels"]), images[rows])
    rgb = [Image.fromarray(images[row], "L").convert("RGB") for row in rows]
    expected = tiny_model.forward(preprocess_batch(rgb, tiny_model.INPUT), tiny_model.weights())["embedding"]
    np.testing.assert_allclose(decoded(first["embeddings"]).astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    assert first["cached"] is False and client.get(url).json["cached"] is True
    assert [path.name for path in (Path(app.instance_path) / "lessons").glob("*.npy")] == [
        "fashion-train-animals-v1-onnx.npy"]
    validation = client.get("/api/v1/lessons/fashion?split=validation&count=10").json
    assert validation["labels"] == list(range(10)) and validation["cached"] is False
    for query in ("split=test", "count=0", "count=201", "start=1000", "start=-1", "start=x"):
        assert error_code(client.get(f"/api/v1/lessons/fashion?{query}"), 400) == "bad_param"
    assert client.get("/api/v1/lessons/fashion?split=validation&start=995&count=10").json["count"] == 5  # the last rows


def test_fashion_augmented_copies(client):
    body = client.get("/api/v1/lessons/fashion/augmented?count=10&copies=2").json
    vectors = decoded(body["embeddings"])
    assert vectors.shape == (2, 10, 16) and body["labels"] == list(range(10))
    assert not np.allclose(vectors[0], vectors[1])  # two different augmented copies
    for query in ("count=0", "count=101", "copies=9", "copies=a"):
        assert error_code(client.get(f"/api/v1/lessons/fashion/augmented?{query}"), 400) == "bad_param"


def test_curves_come_from_the_cards(client):
    versions = client.get("/api/v1/lessons/curves").json["versions"]
    assert versions == [{"name": "animals", "version": "v2", "current": False, "curves": CURVES,
                         "diagnosis": None, "test_accuracy": None}]


def test_missing_data_is_a_503_that_says_how_to_install_it(client, monkeypatch):
    def missing(*args):
        raise real_data.MissingDataError("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")

    monkeypatch.setattr(real_data, "photo_files", missing)
    monkeypatch.setattr(real_data, "fashion_mnist_arrays", missing)
    lesson_data._fashion_rows.cache_clear()  # read once per process: forget the real file
    assert error_code(client.get("/api/v1/lessons/samples"), 503) == "lesson_data_missing"
    response = client.get("/api/v1/lessons/fashion?split=validation&count=5")
    assert error_code(response, 503) == "lesson_data_missing" and "apt-get install" in response.json["error"]["message"]
    lesson_data._fashion_rows.cache_clear()
