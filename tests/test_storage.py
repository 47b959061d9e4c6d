"""Stored uploads through the real app: content-hash files + rows committed with the predictions, opt-out,
de-duplication, crash between file and row (a real killed process), start-up repair, retention, deletion."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from app import create_app, storage
from app.db import Prediction, db
from app.storage import Upload
from cli.main import main as riim
from models import atomic
from tests import tiny_model
from tests.conftest import serving_app

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def serving_registry(tiny_registry):
    """Storage does not depend on what the network sees: the tiny model (tests/tiny_model.py) serves."""
    return tiny_registry


SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}  # as the Analyze page sends: its uploads are stored


def predict(client, content: bytes, filename="photo.png", query=""):
    data = {"image": (io.BytesIO(content), filename)}
    return client.post(f"/api/v1/predict{query}", data=data, content_type="multipart/form-data", headers=SAME_ORIGIN)


def stored_files(app) -> list[Path]:
    return sorted(path for path in (Path(app.instance_path) / "uploads").rglob("*") if path.is_file())


def rows(app, model=Upload) -> list:
    with app.app_context():
        return list(db.session.scalars(select(model)))


def test_predict_stores_the_image_under_its_hash_with_a_linked_row(app, client, photos):
    content = photos["darknet/dog.jpg"].png_bytes()
    sha = hashlib.sha256(content).hexdigest()
    assert predict(client, content, "my dog.png").status_code == 200
    (path,) = stored_files(app)
    assert path == Path(app.instance_path) / "uploads" / sha[:2] / f"{sha}.png"
    assert path.read_bytes() == content
    (upload,) = rows(app)
    assert (upload.sha256, upload.filename, upload.extension, upload.bytes) == (sha, "my dog.png", "png", len(content))
    assert (upload.width, upload.height) == (768, 576)
    (prediction,) = rows(app, Prediction)
    assert prediction.image_sha256 == sha
    assert prediction.label == tiny_model.labels([photos["darknet/dog.jpg"].image])[0]


def test_store_0_keeps_nothing_but_the_prediction(app, client, photos):
    assert predict(client, photos["skimage/coffee"].png_bytes(), query="?store=0").status_code == 200
    assert stored_files(app) == [] and rows(app) == [] and len(rows(app, Prediction)) == 1


def test_same_image_twice_is_stored_once(app, client, photos):
    content = photos["skimage/chelsea"].png_bytes()
    assert [predict(client, content, name).status_code for name in ("a.png", "b.png")] == [200, 200]
    assert len(stored_files(app)) == 1 and len(rows(app)) == 1 and len(rows(app, Prediction)) == 2
    assert rows(app)[0].filename == "a.png"


def test_a_refused_request_stores_nothing(app, client, photos):
    good = photos["skimage/chelsea"].png_bytes()
    data = {"image": [(io.BytesIO(good), "good.png"), (io.BytesIO(b"%PDF-1.4"), "bad.jpg")]}
    response = client.post("/api/v1/predict", data=data, content_type="multipart/form-data", headers=SAME_ORIGIN)
    assert response.status_code == 400
    response = predict(client, good, query="?model=nosuchmodel")
    assert response.status_code == 404
    assert stored_files(app) == [] and rows(app) == []


CRASH = textwrap.dedent("""
    import io, os, sys
    from app import create_app, prepare
    from app.db import db

    app = create_app({"MODELS_DIR": sys.argv[1]})
    prepare(app)
    db.session.commit = lambda: os._exit(3)  # the process dies after the file, before the row
    with open(sys.argv[2], "rb") as handle:
        data = {"image": (io.BytesIO(handle.read()), "crash.png")}
    app.test_client().post("/api/v1/predict", data=data, content_type="multipart/form-data",
                           headers={"Sec-Fetch-Site": "same-origin"})
    sys.exit(0)
""")


def test_crash_between_file_and_row_is_repaired_at_start(tiny_registry, tmp_path, monkeypatch, photos):
    instance = tmp_path / "instance"
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(instance))
    image = tmp_path / "cat.png"
    image.write_bytes(photos["skimage/chelsea"].png_bytes())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    crashed = subprocess.run([sys.executable, "-c", CRASH, str(tiny_registry.root), str(image)], env=env,
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 3, crashed.stderr[-2000:]
    app = create_app({"MODELS_DIR": str(tiny_registry.root)})  # no start-up work: nothing repaired yet
    (orphan,) = stored_files(app)
    assert rows(app) == [] and rows(app, Prediction) == []  # nothing committed
    with app.app_context():
        young = storage.check(repair=True)  # within the grace period: maybe another worker's transaction
    assert young["orphan_files"] == 0 and orphan.exists()
    os.utime(orphan, (time.time() - 3600,) * 2)
    restarted = serving_app({"MODELS_DIR": str(tiny_registry.root)})  # the start-up check repairs
    assert stored_files(restarted) == [] and rows(restarted) == []


def test_dangling_rows_temp_files_and_retention_are_repaired(app, client, photos):
    for name in ("skimage/chelsea", "skimage/coffee", "skimage/rocket"):
        assert predict(client, photos[name].png_bytes()).status_code == 200
    lost, old, kept = rows(app)
    storage_dir = Path(app.instance_path) / "uploads"
    with app.app_context():
        storage.path_for(lost.sha256, lost.extension).unlink()  # e.g. a disk restored from an old backup
        db.session.execute(update(Upload).where(Upload.sha256 == old.sha256)
                           .values(created=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=45)))
        db.session.commit()
    temp = storage_dir / "ab" / f"{atomic.TEMP_PREFIX}123-abc.png"  # left by a crash while writing
    temp.parent.mkdir(exist_ok=True)
    temp.write_bytes(b"half")
    os.utime(temp, (time.time() - 3600,) * 2)
    runner = CliRunner()
    report = runner.invoke(riim, ["uploads", "check", "--report-only"])
    assert report.exit_code == 0, report.output
    assert "dangling_rows=1" in report.output and "temp_files=1" in report.output and "expired=1" in report.output
    assert len(rows(app)) == 3 and temp.exists()  # report only
    repaired = runner.invoke(riim, ["uploads", "check"])
    assert "(repaired)" in repaired.output, repaired.output
    assert [upload.sha256 for upload in rows(app)] == [kept.sha256]
    assert [path.name for path in stored_files(app)] == [f"{kept.sha256}.png"]
    assert len(rows(app, Prediction)) == 3  # the answers stay, with the image hash


def test_admin_downloads_and_deletes_an_upload(app, client, admin_client, photos):
    content = photos["skimage/chelsea"].png_bytes()
    sha = hashlib.sha256(content).hexdigest()
    assert predict(client, content).status_code == 200
    assert client.get(f"/api/v1/uploads/{sha}").status_code == 401
    response = admin_client.get(f"/api/v1/uploads/{sha}")
    assert response.status_code == 200 and response.mimetype == "image/png" and response.data == content
    response = admin_client.delete(f"/api/v1/uploads/{sha}")
    assert response.status_code == 200 and response.json["deleted"]["sha256"] == sha
    assert stored_files(app) == [] and rows(app) == []
    assert admin_client.delete(f"/api/v1/uploads/{sha}").status_code == 404


def test_migrations_create_exactly_the_models_tables(app):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), db.metadata) == []
