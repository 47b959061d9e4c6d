"""CSV formula injection: a hostile upload filename reaches the teacher's label export as inert text."""
from __future__ import annotations

import csv
import hashlib
import io

import pytest
from PIL import Image

from app.labelling import csv_cell

API = "/api/v1/labelling"
HOSTILE = ["=HYPERLINK(B1&A1;C1)", "+1+cmd|' -c calc'!A0", "-2+3", "@SUM(1+1)"]


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 40 % 256, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_hostile_filenames_are_exported_as_text(admin_client):
    contents = [png(seed) for seed in range(len(HOSTILE))]
    files = [(io.BytesIO(data), name) for data, name in zip(contents, HOSTILE)]
    # the Analyze page's own (same-origin) upload path
    response = admin_client.post("/api/v1/predict?store=1", data={"image": files}, content_type="multipart/form-data",
                                 headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, response.json
    assert [result["filename"] for result in response.json["results"]] == HOSTILE
    assert admin_client.post(f"{API}/projects", json={"name": "clothes", "classes": ["bag"]}).status_code == 201
    items = [{"sha256": hashlib.sha256(data).hexdigest(), "label": "bag"} for data in contents]
    assert admin_client.post(f"{API}/projects/clothes/labels", json={"items": items}).status_code == 200

    exported = admin_client.get(f"{API}/projects/clothes/labels?format=csv")
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [row["filename"] for row in rows] == ["'" + name for name in HOSTILE]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())
    # the JSON export keeps the names as they are (no spreadsheet reads it), and a CSV round trip still imports
    assert [row["filename"] for row in admin_client.get(f"{API}/projects/clothes/labels").json["labels"]] == HOSTILE
    reimport = admin_client.post(f"{API}/projects/clothes/labels/import", content_type="multipart/form-data",
                                 data={"file": (io.BytesIO(exported.data), "labels.csv")})
    assert reimport.json["imported"] == len(HOSTILE)


@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("cat.png", "cat.png"), ("a=b", "a=b"), ("", ""), (None, None), (True, True),
])
def test_csv_cell(value, cell):
    assert csv_cell(value) == cell
