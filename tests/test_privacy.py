"""Privacy of stored uploads: no EXIF/XMP/GPS in stored copies (orientation applied first; PNG and JPEG pixels
byte for byte), deleting an upload deletes its copies in job folders, finished job folders are emptied after the
retention. Real photo (scikit-image's chelsea) saved as JPEG/PNG with GPS EXIF written by Pillow's Exif API."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from app import jobs, storage
from app.db import db
from app.jobs import Job
from app.storage import Upload

API = "/api/v1/labelling"
SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="40,25.0N"/></x:xmpmeta>'


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


def gps_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.DateTime] = "2026:05:04 10:11:12"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (40.0, 25.0, 1.5),
                                  ExifTags.GPS.GPSLongitudeRef: "W", ExifTags.GPS.GPSLongitude: (3.0, 42.0, 30.0)}
    return exif


def photo(photos, fmt: str, orientation: int = 1) -> bytes:
    image = photos["skimage/chelsea"].image.convert("RGB")
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=90, exif=gps_exif(orientation), comment=b"taken at home", xmp=XMP)
    else:
        from PIL import PngImagePlugin

        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", "taken at home")
        text.add_itxt("XML:com.adobe.xmp", XMP.decode())
        image.save(out, "PNG", exif=gps_exif(orientation), pnginfo=text)
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as check:  # the metadata is really there
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    return data


def store(client, *contents: bytes) -> list[Path]:
    files = [(io.BytesIO(data), f"photo{i}") for i, data in enumerate(contents)]
    response = client.post("/api/v1/predict?store=1", data={"image": files}, content_type="multipart/form-data",
                           headers=SAME_ORIGIN)
    assert response.status_code == 200, response.json
    paths = []
    for data in contents:
        sha = hashlib.sha256(data).hexdigest()
        (path,) = (Path(client.application.instance_path) / "uploads" / sha[:2]).glob(f"{sha}.*")
        paths.append(path)
    return paths


def assert_no_metadata(path: Path) -> None:
    data = path.read_bytes()
    for needle in (b"Exif", b"PhoneMaker", b"xmpmeta", b"taken at home", b"2026:05:04"):
        assert needle not in data, needle
    with Image.open(path) as image:
        assert not image.getexif() and not {"exif", "xmp", "comment", "XML:com.adobe.xmp", "Comment"} & set(image.info)


def upright(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float64)


def test_jpeg_with_gps_is_stored_upright_without_metadata(app, admin_client, photos):
    rotated, plain = photo(photos, "JPEG", orientation=6), photo(photos, "JPEG")
    paths = store(admin_client, rotated, plain)
    for data, path in zip((rotated, plain), paths):
        assert path.suffix == ".jpg" and path.stem == hashlib.sha256(data).hexdigest()  # the key: the bytes sent
        assert_no_metadata(path)
        original, stored = upright(data), upright(path.read_bytes())
        assert stored.shape == original.shape  # orientation applied: no tag needed
    assert np.array_equal(upright(paths[1].read_bytes()), upright(plain))  # upright already: lossless
    turned, stored = upright(rotated), upright(paths[0].read_bytes())
    assert 10 * np.log10(255 ** 2 / ((stored - turned) ** 2).mean()) > 38  # re-encoded once with its own tables
    with Image.open(paths[0]) as image:
        assert image.size == (300, 451)  # chelsea is 451 × 300, turned by orientation 6
    with app.app_context():
        rows = {row.sha256: row for row in db.session.scalars(db.select(Upload))}
    row = rows[paths[0].stem]
    assert (row.width, row.height, row.bytes) == (300, 451, paths[0].stat().st_size)
    store(admin_client, rotated)  # the same bytes again: one file, one row
    with app.app_context():
        assert db.session.query(Upload).count() == 2


@pytest.mark.parametrize("options", [{"progressive": True, "icc_profile": b"ICC" * 500},
                                     {"restart_marker_blocks": 1, "subsampling": 0}, {"mode": "CMYK"}, {"mode": "L"}])
def test_jpeg_keeps_its_scans_byte_for_byte(photos, options):
    image = photos["skimage/chelsea"].image.convert(options.pop("mode", "RGB"))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=gps_exif(1), comment=b"taken at home", xmp=XMP, **options)
    clean = storage.clean_copy(out.getvalue(), "JPEG")
    for needle in (b"Exif", b"PhoneMaker", b"xmpmeta", b"taken at home", b"ICC" * 10):
        assert needle not in clean, needle
    with Image.open(io.BytesIO(clean)) as stored, Image.open(out) as original:
        assert stored.mode == original.mode and np.array_equal(np.asarray(stored), np.asarray(original))


def test_png_keeps_its_pixels_byte_for_byte_without_metadata(admin_client, photos):
    plain_png = photos["skimage/chelsea"].png_bytes()
    tagged, rotated = photo(photos, "PNG"), photo(photos, "PNG", orientation=3)
    tagged_path, rotated_path, plain_path = store(admin_client, tagged, rotated, plain_png)
    assert_no_metadata(tagged_path)
    assert_no_metadata(rotated_path)
    assert np.array_equal(upright(tagged_path.read_bytes()), upright(tagged))  # lossless
    assert np.array_equal(upright(rotated_path.read_bytes()), upright(rotated))  # turned 180°, still lossless
    assert plain_path.read_bytes() == plain_png  # nothing to remove: the very same bytes


def test_clean_copy_of_webp_and_gif(photos):
    image = photos["skimage/chelsea"].image.convert("RGB").resize((64, 48))
    for fmt, options in (("WEBP", {"lossless": True}), ("WEBP", {"quality": 80}), ("GIF", {"comment": b"taken at home"})):
        out = io.BytesIO()
        (image.convert("P") if fmt == "GIF" else image).save(out, fmt, exif=gps_exif(1), xmp=XMP, **options)
        clean = storage.clean_copy(out.getvalue(), fmt)
        assert b"PhoneMaker" not in clean and b"xmpmeta" not in clean and b"taken at home" not in clean
        if options.get("lossless") or fmt == "GIF":
            assert np.array_equal(upright(clean), upright(out.getvalue()))


def test_deleting_an_upload_deletes_its_copies_in_job_folders(app, admin_client, photos):
    contents = [photo(photos, "JPEG", orientation) for orientation in (1, 3, 6, 8)]
    store(admin_client, *contents)
    shas = [hashlib.sha256(data).hexdigest() for data in contents]
    assert admin_client.post(f"{API}/projects", json={"name": "pets", "classes": ["cat", "dog"]}).status_code == 201
    items = [{"sha256": sha, "label": label} for sha, label in zip(shas, ["cat", "cat", "dog", "dog"])]
    assert admin_client.post(f"{API}/projects/pets/labels", json={"items": items}).status_code == 200
    instance = Path(app.instance_path)
    with app.app_context():
        app.config["LABEL_HOLDOUT_EVERY"] = 0
        jobs.write_folders("pets", instance / "jobs" / "1", 1)  # what POST /api/v1/jobs writes (hard links)
    assert len(list(instance.rglob(f"{shas[0]}.jpg"))) == 2
    assert admin_client.delete(f"/api/v1/uploads/{shas[0]}").status_code == 200
    assert list(instance.rglob(f"{shas[0]}.jpg")) == []
    assert len(list(instance.rglob(f"{shas[1]}.jpg"))) == 2  # the others stay


def make_job(app, state: str, finished_days_ago: float | None) -> Path:
    with app.app_context():
        job = Job(project="pets", state=state, user="admin", directory="", options={}, created=jobs.now(),
                  finished=None if finished_days_ago is None else jobs.now() - dt.timedelta(days=finished_days_ago))
        db.session.add(job)
        db.session.commit()
        directory = Path(app.instance_path) / "jobs" / str(job.id)
        job.directory = str(directory)
        db.session.commit()
    for name in ("data/cat/a.jpg", "holdout/cat/b.jpg", "work/features.npz", "log.txt", "progress.json"):
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(b"x")
    return directory


def test_finished_job_folders_are_emptied_after_the_retention(app):
    app.config["JOBS_RETENTION_DAYS"] = 7
    old, recent = make_job(app, "succeeded", 8), make_job(app, "failed", 2)
    running = make_job(app, "running", None)
    with app.app_context():
        jobs.check()  # the start-up work (app.prepare, riim jobs check)
        assert db.session.query(Job).count() == 3  # the rows stay
    assert sorted(path.name for path in old.iterdir()) == ["log.txt", "progress.json"]
    for kept in (recent, running):
        assert sorted(path.name for path in kept.iterdir()) == ["data", "holdout", "log.txt", "progress.json", "work"]
    app.config["JOBS_RETENTION_DAYS"] = 0  # never
    with app.app_context():
        jobs.check()
    assert (recent / "data").is_dir()
