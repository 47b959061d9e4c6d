"""Labelling API on real stored uploads (Fashion-MNIST images). Labelling works on the stored answers and
embeddings whatever network made them, so the tiny model of tests/tiny_model.py serves; how well the
embeddings cluster is checked on the real default model."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from app.db import Prediction, db
from app.labelling import Embedding, kmeans, uncertainty
from training import importers

API = "/api/v1/labelling"


def fashion_pngs(name: str, count: int, offset: int = 0, source: str = "train") -> list[bytes]:
    """``count`` real Fashion-MNIST images of class ``name`` as PNG bytes."""
    images, labels = importers.fashion_mnist_arrays(source)
    index = importers.FASHION_MNIST_CLASSES.index(name)
    chosen = np.flatnonzero(labels == index)[offset:offset + count]
    out = []
    for i in chosen:
        buffer = io.BytesIO()
        Image.fromarray(images[i]).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def upload(client, pngs: list[bytes], model: str | None = None) -> list[str]:
    """Analyse (and store) ``pngs`` through the public predict API; returns their sha256."""
    import hashlib

    for start in range(0, len(pngs), 16):
        files = [(io.BytesIO(data), f"img{start + i}.png") for i, data in enumerate(pngs[start:start + 16])]
        response = client.post("/api/v1/predict" + (f"?model={model}" if model else ""), data={"image": files},
                               content_type="multipart/form-data")
        assert response.status_code == 200, response.json
    return [hashlib.sha256(data).hexdigest() for data in pngs]


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


@pytest.fixture(autouse=True)
def holdout_every_4th(app):
    app.config["LABEL_HOLDOUT_EVERY"] = 4


@pytest.fixture
def stored(admin_client):
    """(trouser shas, bag shas): 4 + 4 real uploads with the served model's predictions."""
    return upload(admin_client, fashion_pngs("trouser", 4)), upload(admin_client, fashion_pngs("bag", 4))


def create_project(client, name="clothes", classes=("trouser", "bag")):
    response = client.post(f"{API}/projects", json={"name": name, "classes": list(classes)})
    assert response.status_code == 201, response.json
    return response.json


def test_queue_is_ordered_by_uncertainty_of_the_stored_predictions(app, admin_client, stored):
    create_project(admin_client)
    for order in ("margin", "entropy"):
        queue = admin_client.get(f"{API}/projects/clothes/queue?order={order}").json
        assert queue["total"] == 8
        with app.app_context():
            expected = {p.image_sha256: uncertainty(p.probabilities, order) for p in db.session.scalars(
                db.select(Prediction))}
        values = [item["uncertainty"] for item in queue["items"]]
        assert values == sorted(values, reverse=True)
        assert values == pytest.approx(sorted(expected.values(), reverse=True))
    p = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert uncertainty(p, "margin") == pytest.approx(0.8)
    assert uncertainty(p, "entropy") == pytest.approx(-(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2))
                                                      / np.log(3))
    assert uncertainty({"a": 1.0, "b": 0.0}, "entropy") == pytest.approx(0.0)


def test_label_skip_bad_new_class_history_and_filters(app, admin_client, stored):
    trousers, bags = stored
    create_project(admin_client)
    items = [{"sha256": sha, "label": "trouser"} for sha in trousers] + [
        {"sha256": bags[0], "label": "handbag"}, {"sha256": bags[1], "status": "skipped"},
        {"sha256": bags[2], "status": "bad"}]
    answer = admin_client.post(f"{API}/projects/clothes/labels", json={"items": items}).json
    assert answer["project"]["classes"] == ["trouser", "bag", "handbag"]  # the new class joined
    assert answer["counts"]["statuses"] == {"labelled": 5, "skipped": 1, "bad": 1}
    assert answer["counts"]["classes"]["trouser"] == {"train": 3, "holdout": 1}  # every 4th held out (config)
    # relabel: history keeps both, newest first, with who; the holdout flag stays with the image
    admin_client.post(f"{API}/projects/clothes/labels", json={"sha256": bags[0], "label": "bag"})
    history = admin_client.get(f"{API}/projects/clothes/labels/{bags[0]}/history").json["history"]
    assert [(row["label"], row["user"]) for row in history] == [("bag", "admin"), ("handbag", "admin")]
    queue = admin_client.get(f"{API}/projects/clothes/queue").json
    assert [item["sha256"] for item in queue["items"]] == [bags[3]]
    assert admin_client.get(f"{API}/projects/clothes/queue?status=bad").json["items"][0]["sha256"] == bags[2]
    assert admin_client.get(f"{API}/projects/clothes/queue?status=all").json["total"] == 8
    predicted = queue["items"][0]["prediction"]["label"]
    assert admin_client.get(f"{API}/projects/clothes/queue?status=all&predicted={predicted}").json["total"] >= 1
    assert admin_client.get(f"{API}/projects/clothes/queue?status=all&predicted=zebra").json["total"] == 0
    unknown = admin_client.get(f"{API}/projects/clothes/queue?status=all&unknown=1").json["items"]
    assert all(item["prediction"]["unknown"] for item in unknown)
    assert admin_client.get(f"{API}/projects/clothes/queue?status=all&since=2999-01-01").json["total"] == 0
    assert admin_client.get(f"{API}/projects/clothes/queue?status=all&until=2999-01-01").json["total"] == 8


def test_export_and_import_round_trip_csv_and_json(admin_client, stored):
    trousers, bags = stored
    create_project(admin_client)
    admin_client.post(f"{API}/projects/clothes/labels", json={"items": [
        {"sha256": trousers[0], "label": "trouser"}, {"sha256": bags[0], "label": "bag"},
        {"sha256": bags[1], "status": "bad"}]})
    exported = admin_client.get(f"{API}/projects/clothes/labels?format=csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert {(r["sha256"], r["status"], r["label"]) for r in rows} == {
        (trousers[0], "labelled", "trouser"), (bags[0], "labelled", "bag"), (bags[1], "bad", "")}
    create_project(admin_client, "copy", ())
    imported = admin_client.post(f"{API}/projects/copy/labels/import",
                                 data={"file": (io.BytesIO(exported.data), "labels.csv")},
                                 content_type="multipart/form-data").json
    assert imported["imported"] == 3 and imported["counts"]["statuses"] == {"labelled": 2, "skipped": 0, "bad": 1}
    as_json = admin_client.get(f"{API}/projects/clothes/labels").json["labels"]
    create_project(admin_client, "copy2", ())
    assert admin_client.post(f"{API}/projects/copy2/labels/import", json=as_json).json["imported"] == 3
    again = admin_client.get(f"{API}/projects/copy2/labels").json["labels"]
    assert [(r["sha256"], r["label"]) for r in again] == [(r["sha256"], r["label"]) for r in as_json]


class TestOnTheRealModel:
    """Clustering quality depends on what the network sees: these uploads are analysed by the real default model."""

    @pytest.fixture
    def serving_registry(self, default_registry):
        return default_registry

    @pytest.mark.slow
    def test_clusters_of_real_embeddings_separate_the_two_kinds(self, app, admin_client, stored):
        trousers, bags = stored
        create_project(admin_client)
        answer = admin_client.post(f"{API}/projects/clothes/clusters?k=2").json
        groups = [set(group["members"]) for group in answer["clusters"]]
        assert len(groups) == 2 and set.union(*groups) == set(trousers) | set(bags)
        purity = sum(max(len(group & set(trousers)), len(group & set(bags))) for group in groups) / 8
        assert purity >= 7 / 8  # similar images land together (chance level is about 5/8)
        with app.app_context():
            assert db.session.query(Embedding).count() == 8  # stored once, reused
        admin_client.post(f"{API}/projects/clothes/clusters?k=2")
        with app.app_context():
            assert db.session.query(Embedding).count() == 8
        points = np.concatenate([np.random.default_rng(0).normal(c, 0.05, (10, 3)) for c in np.eye(3)])
        assert len({tuple(kmeans(points, 3)[i:i + 10]) for i in (0, 10, 20)}) == 3


@pytest.mark.parametrize("method, url, body, status, code", [
    ("get", f"{API}/projects/nope/queue", None, 404, "unknown_project"),
    ("get", f"{API}/projects/clothes/queue?order=random", None, 400, "bad_param"),
    ("get", f"{API}/projects/clothes/queue?since=yesterday", None, 400, "bad_param"),
    ("post", f"{API}/projects/clothes/clusters?k=1", None, 400, "bad_param"),
    ("post", f"{API}/projects", {"name": "Bad Name", "classes": []}, 400, "bad_project_name"),
    ("post", f"{API}/projects", {"name": "clothes", "classes": []}, 409, "project_exists"),
    ("post", f"{API}/projects", {"name": "x2", "classes": ["a", "a"]}, 400, "duplicate_class"),
    ("post", f"{API}/projects/clothes/labels", {"sha256": "0" * 64, "label": "bag"}, 404, "upload_not_found"),
    ("post", f"{API}/projects/clothes/labels", {"sha256": "xyz", "label": "bag"}, 400, "bad_param"),
    ("post", f"{API}/projects/clothes/labels", [1, 2], 400, "missing_field"),
    ("post", f"{API}/projects/clothes/labels/import", {"labels": "no"}, 400, "missing_field"),
])
def test_bad_requests_answer_json_4xx(admin_client, method, url, body, status, code):
    create_project(admin_client)
    response = getattr(admin_client, method)(url, json=body) if body is not None else getattr(admin_client, method)(url)
    assert response.status_code == status and response.json["error"]["code"] == code, response.json


def test_bad_class_name_and_csv_and_admin_only(client, admin_client, stored):
    create_project(admin_client)
    sha = stored[0][0]
    response = admin_client.post(f"{API}/projects/clothes/labels", json={"sha256": sha, "label": "../etc"})
    assert response.json["error"]["code"] == "bad_class_name"
    response = admin_client.post(f"{API}/projects/clothes/labels/import", data={"file": (io.BytesIO(b"\xff\xfe"), "x.csv")},
                                 content_type="multipart/form-data")
    assert response.json["error"]["code"] == "bad_csv"
    assert client.get(f"{API}/projects").status_code == 401
    assert client.get("/api/v1/jobs").status_code == 401
    token = admin_client.environ_base.pop("HTTP_X_CSRFTOKEN")
    assert admin_client.post(f"{API}/projects/clothes/labels", json={"sha256": sha, "label": "bag"}).json[
        "error"]["code"] == "csrf_failed"
    admin_client.environ_base["HTTP_X_CSRFTOKEN"] = token


def test_label_page_renders_with_the_catalogue(client):
    page = client.get("/label?lang=en").get_data(as_text=True)
    assert "Label images and retrain" in page and "js/label.js" in page
