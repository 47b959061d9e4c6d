"""The labelling queue is filtered, ordered and paginated in SQL: 50,000 stored uploads (rows made with bulk
inserts, no image files needed) answer their first page by loading only that page's rows, exactly like the
Python reference.
Grouping the head of the queue (k-means, which stores embeddings) is a POST with CSRF."""
from __future__ import annotations

import datetime as dt
import hashlib
import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import event, insert

from app.db import Prediction, db
from app.labelling import Embedding, Label, uncertainty
from app.storage import Upload

API = "/api/v1/labelling"
UPLOADS = 50_000
LABELLED = 5_000  # the first ones: labelled, so not in the default (unlabelled) queue
CLASSES = ("bag", "sneaker", "trouser")


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


@pytest.fixture
def many(app):
    """sha256 → (created, probabilities) of UPLOADS uploads with one prediction each; the first LABELLED labelled."""
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(len(CLASSES)), UPLOADS).round(6)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(UPLOADS)]
    created = [start + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 10**6, UPLOADS)]
    with app.app_context():
        db.session.execute(insert(Upload), [
            {"sha256": sha, "created": when, "filename": f"{i}.png", "extension": "png", "bytes": 1, "width": 8,
             "height": 8} for i, (sha, when) in enumerate(zip(shas, created))])
        db.session.execute(insert(Prediction), [
            {"image_sha256": sha, "created": when, "model_name": "animals", "model_version": "v1",
             "label": CLASSES[int(p.argmax())], "confidence": float(p.max()), "unknown": bool(p.max() < 0.5),
             "probabilities": dict(zip(CLASSES, map(float, p))), "inference_ms": 1.0}
            for sha, when, p in zip(shas, created, probabilities)])
        db.session.execute(insert(Label), [
            {"project": "shop", "upload_sha256": sha, "status": "labelled", "label": "bag", "holdout": False,
             "user": "admin", "created": start} for sha in shas[:LABELLED]])
        db.session.commit()
    return {sha: (when, dict(zip(CLASSES, map(float, p)))) for sha, when, p in zip(shas, created, probabilities)}


def expected_page(many: dict, order: str, offset: int, limit: int, skip: set) -> list[str]:
    keys = {sha: (-uncertainty(p, order), when, i) for i, (sha, (when, p)) in enumerate(many.items()) if sha not in skip}
    return sorted(keys, key=keys.get)[offset:offset + limit]


def test_first_page_of_50000_uploads_loads_only_that_page_and_is_right(admin_client, many):
    assert admin_client.post(f"{API}/projects", json={"name": "shop", "classes": list(CLASSES)}).status_code == 201
    labelled = set(list(many)[:LABELLED])
    loaded = []
    count = lambda target, context: loaded.append(target)  # noqa: E731 — every ORM object built from a row
    for order in ("margin", "entropy"):
        event.listen(Upload, "load", count)
        try:
            answer = admin_client.get(f"{API}/projects/shop/queue?order={order}&limit=50").json
        finally:
            event.remove(Upload, "load", count)
        assert len(loaded) == 50, f"{order}: {len(loaded)} uploads loaded for a page of 50"  # the old queue: 45,000
        loaded.clear()
        assert answer["total"] == UPLOADS - LABELLED
        assert [item["sha256"] for item in answer["items"]] == expected_page(many, order, 0, 50, labelled)
        assert answer["counts"]["statuses"]["labelled"] == LABELLED
    page = admin_client.get(f"{API}/projects/shop/queue?order=margin&limit=20&offset=20000").json
    assert [item["sha256"] for item in page["items"]] == expected_page(many, "margin", 20000, 20, labelled)
    newest = admin_client.get(f"{API}/projects/shop/queue?order=date&status=all&limit=5").json
    assert [item["created"][:19] for item in newest["items"]] == sorted(
        (when.isoformat()[:19] for when, _ in many.values()), reverse=True)[:5]
    unknown = admin_client.get(f"{API}/projects/shop/queue?status=labelled&unknown=1&limit=500").json
    assert unknown["total"] == sum(max(many[sha][1].values()) < 0.5 for sha in labelled)
    assert all(item["prediction"]["unknown"] and item["status"] == "labelled" for item in unknown["items"])



def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_grouping_is_a_post_with_csrf_over_the_head_of_the_queue(app, admin_client):
    """k-means computes and stores embeddings: a GET must not do it (405), a POST without the token is refused."""
    contents = [png((40 * i, 255 - 40 * i, 90)) for i in range(6)]
    files = [(io.BytesIO(data), f"{i}.png") for i, data in enumerate(contents)]
    assert admin_client.post("/api/v1/predict?store=1", data={"image": files}, content_type="multipart/form-data",
                             headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert admin_client.post(f"{API}/projects", json={"name": "shop", "classes": list(CLASSES)}).status_code == 201
    shas = [hashlib.sha256(data).hexdigest() for data in contents]
    assert admin_client.post(f"{API}/projects/shop/labels", json={"sha256": shas[0], "label": "bag"}).status_code == 200

    assert admin_client.get(f"{API}/projects/shop/clusters?k=2").status_code == 405
    token = admin_client.environ_base.pop("HTTP_X_CSRFTOKEN")
    refused = admin_client.post(f"{API}/projects/shop/clusters?k=2")
    admin_client.environ_base["HTTP_X_CSRFTOKEN"] = token
    assert refused.status_code == 400 and refused.json["error"]["code"] == "csrf_failed"
    with app.app_context():
        assert db.session.query(Embedding).count() == 0  # neither call computed anything

    answer = admin_client.post(f"{API}/projects/shop/clusters?k=2").json
    members = [sha for group in answer["clusters"] for sha in group["members"]]
    assert sorted(members) == sorted(shas[1:])  # the unlabelled ones
    with app.app_context():
        assert db.session.query(Embedding).count() == 5
