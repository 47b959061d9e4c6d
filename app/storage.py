"""Stored uploads: the analysed images, kept for the labelling loop under content-hash names.

Files live in ``<instance>/uploads/<sha[:2]>/<sha256>.<ext>`` — the name comes from the bytes, never from
the client; the client's filename is only sanitised metadata in the :class:`Upload` row. An upload is
linked to its predictions by ``Prediction.image_sha256``.

Privacy. The stored copy carries no metadata: no EXIF (GPS, camera, dates), XMP, IPTC, comments or text
chunks (:func:`clean_copy`), with the EXIF orientation applied first. Its name stays the sha256 of the bytes
the client sent (what a student can compute to find or delete their photo; stable across Pillow
versions), so the stored content does not hash to its name. Deleting an upload deletes every copy,
including the links in training-job folders (:func:`copies`).

Crash safety. :func:`save` writes the file first (temp file, fsync, ``os.replace``: idempotent for the
same content) and adds the row to the request's transaction, committed together with the predictions.
A crash in between leaves a file without a row; :func:`check` (``riim uploads check``, run before serving)
deletes such orphans once older than ``UPLOAD_ORPHAN_GRACE_SECONDS`` (another worker may be about to
commit), deletes rows whose file is gone, and applies the retention (``UPLOAD_RETENTION_DAYS``).
"""
from __future__ import annotations

import datetime as dt
import io
import re
import time
import unicodedata
from pathlib import Path

import click
from flask import Blueprint, Flask, current_app, jsonify, send_file
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin
from sqlalchemy import DateTime, Integer, String, delete, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Mapped, mapped_column

from app.auth import admin_required
from app.db import db
from app.errors import ApiError
from models import atomic

bp = Blueprint("uploads", __name__, url_prefix="/api/v1/uploads")
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
MIME_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif", "bmp": "image/bmp"}
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_FILENAME = 200


class Upload(db.Model):
    """One stored image (unique by content)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True,
                                                 default=lambda: dt.datetime.now(dt.timezone.utc))
    filename: Mapped[str | None] = mapped_column(String(MAX_FILENAME))
    extension: Mapped[str] = mapped_column(String(8))
    bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)

    def as_json(self) -> dict:
        return {"sha256": self.sha256, "created": self.created.isoformat(), "filename": self.filename,
                "extension": self.extension, "bytes": self.bytes, "width": self.width, "height": self.height}


def sanitize_filename(name: str | None) -> str | None:
    """The client's filename as safe metadata: last path component, NFC, no control characters, bounded."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", re.split(r"[\\/]", name)[-1])
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C")).strip().lstrip(".")
    return name[:MAX_FILENAME] or None


def root() -> Path:
    return Path(current_app.instance_path) / "uploads"


def path_for(sha256: str, extension: str) -> Path:
    return root() / sha256[:2] / f"{sha256}.{extension}"


def copies(sha256: str, extension: str) -> list[Path]:
    """Every file holding an upload: the stored copy and its links (or copies) in the training-job folders
    that :mod:`app.jobs` writes (``<instance>/jobs/<id>/<data|holdout>/<class>/<sha256>.<ext>``)."""
    jobs = Path(current_app.instance_path) / "jobs"
    return [path_for(sha256, extension), *jobs.glob(f"*/*/*/{sha256}.{extension}")]


# PNG chunks that describe pixels; everything else (eXIf, tEXt/zTXt/iTXt with XMP, tIME, private chunks,
# APNG frames) is dropped. https://www.w3.org/TR/png-3/#5ChunkOrdering
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_PIXEL_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs"}


def _orientation(tiff: bytes) -> int:
    exif = Image.Exif()
    try:
        exif.load(tiff)
    except Exception:  # noqa: BLE001 — unreadable EXIF: the decoder ignored it too
        return 1
    return exif.get(ExifTags.Base.Orientation, 1)


def _png_without_metadata(data: bytes) -> bytes | None:
    """``data`` with only its pixel chunks, byte for byte; None when an EXIF orientation must be applied first
    (or the chunk structure is not the expected one)."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    kept, position = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        size, kind = int.from_bytes(data[position:position + 4], "big"), data[position + 4:position + 8]
        end = position + 12 + size
        if end > len(data) or (kind == b"eXIf" and _orientation(data[position + 8:end - 4]) != 1):
            return None
        if kind in PNG_PIXEL_CHUNKS:
            kept.append(data[position:end])
        if kind == b"IEND":
            return b"".join(kept)
        position = end
    return None


# JPEG segments that describe pixels; APP1-APP13/APP15 (EXIF, XMP, IPTC, ICC, maker data), comments and
# anything after the end of the image are dropped. https://www.w3.org/Graphics/JPEG/itu-t81.pdf (B.1.1.3)
JPEG_PIXEL_MARKERS = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0),
                      0xC4, 0xCC, 0xDB, 0xDD, 0xDA, 0xDC}  # SOFn, DHT, DAC, DQT, DRI, SOS, DNL
JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # not a stuffed 0xFF00 nor a restart marker
JFIF_HEADER = 14  # "JFIF\0", version, units, densities, thumbnail size (its pixels are dropped)


def _jpeg_without_metadata(data: bytes) -> bytes | None:
    """``data`` with only the segments that describe its pixels, byte for byte (lossless): the JFIF header
    without a thumbnail, the Adobe colour transform, tables, frames and scans. None when an EXIF orientation
    must be applied first or the marker structure is not the expected one."""
    if not data.startswith(b"\xff\xd8"):
        return None
    kept, position = [b"\xff\xd8"], 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:  # end of image
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if end > len(data) or end < position + 4:
            return None
        payload = data[position + 4:end]
        if marker == 0xE0 and payload.startswith(b"JFIF\0") and len(payload) >= JFIF_HEADER:
            kept.append(b"\xff\xe0" + (JFIF_HEADER + 2).to_bytes(2, "big") + payload[:12] + b"\0\0")
        elif marker == 0xEE and payload.startswith(b"Adobe"):
            kept.append(data[position:end])
        elif marker == 0xE1 and payload.startswith(b"Exif\0\0") and _orientation(payload[6:]) != 1:
            return None
        elif marker in JPEG_PIXEL_MARKERS:
            kept.append(data[position:end])
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE):  # other than an application segment or a comment
            return None
        position = end
        if marker == 0xDA:  # entropy-coded data up to the next marker
            found = JPEG_NEXT_MARKER.search(data, position)
            if found is None:
                return None
            position = found.start()
            kept.append(data[end:position])
    return None


def _webp_lossless(data: bytes) -> bool:
    """Whether the first image chunk of a WebP file is lossless (VP8L)."""
    position = 12
    while position + 8 <= len(data):
        kind, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8L"
        position += 8 + size + (size & 1)
    return False


def clean_copy(data: bytes, image_format: str) -> bytes:
    """The bytes to store for an accepted upload (``image_format`` as decoded): no EXIF, XMP, IPTC, GPS,
    comments or text, the EXIF orientation applied. BMP has no metadata and is kept as is. PNG keeps its
    pixel chunks and JPEG its tables and scans byte for byte (lossless, and no decoding). To apply an EXIF
    orientation, PNG is re-encoded as PNG and JPEG once with its own quantisation tables and chroma
    subsampling (a small generation loss, about the file's own quality), as is a multi-picture JPEG. WebP is
    re-encoded losslessly if it was lossless, else at quality 90; GIF keeps its first frame and palette."""
    if image_format == "BMP":
        return data
    stripped = {"PNG": _png_without_metadata, "JPEG": _jpeg_without_metadata}.get(image_format, lambda _: None)(data)
    if stripped is not None:
        return stripped
    with Image.open(io.BytesIO(data)) as original:
        original.seek(0)
        image = ImageOps.exif_transpose(original)  # a new image, upright
        image.info = {key: value for key, value in image.info.items() if key == "transparency"}
        out = io.BytesIO()
        if image_format in ("JPEG", "MPO"):
            image.save(out, "JPEG", qtables=original.quantization, subsampling=JpegImagePlugin.get_sampling(original))
        elif image_format == "WEBP":
            lossless = _webp_lossless(data)
            image.save(out, "WEBP", lossless=lossless, quality=100 if lossless else 90, exact=True)
        else:  # PNG with an orientation, GIF
            image.save(out, image_format)
    return out.getvalue()


def save(sha256: str, data: bytes, image_format: str, size: tuple[int, int], filename: str | None) -> None:
    """Store a metadata-free copy of ``data`` (once per content: ``sha256`` is the hash of ``data``) and add
    its row to the current transaction (the caller commits)."""
    extension = EXTENSIONS[image_format]
    path = path_for(sha256, extension)
    if not path.exists():
        atomic.write_bytes(path, clean_copy(data, image_format))
    db.session.execute(insert(Upload).values(
        sha256=sha256, created=dt.datetime.now(dt.timezone.utc), filename=sanitize_filename(filename),
        extension=extension, bytes=path.stat().st_size, width=size[0], height=size[1],
    ).on_conflict_do_nothing(index_elements=["sha256"]))


def remove(upload: Upload) -> None:
    """Delete the row (committed) and then every copy of the file, job folders included: a crash in between
    leaves an orphan that check() removes (or a job-folder link that the jobs' retention removes)."""
    paths = copies(upload.sha256, upload.extension)
    db.session.delete(upload)
    db.session.commit()
    for path in paths:
        path.unlink(missing_ok=True)


def check(repair: bool = True, grace_seconds: float | None = None) -> dict[str, int]:
    """Compare the uploads folder with the table; with ``repair``, delete orphans, dangling rows and expired
    uploads. Answers the counts found."""
    grace = current_app.config["UPLOAD_ORPHAN_GRACE_SECONDS"] if grace_seconds is None else grace_seconds
    rows = {sha: extension for sha, extension in db.session.execute(select(Upload.sha256, Upload.extension))}
    report = {"uploads": len(rows), "orphan_files": 0, "temp_files": 0, "dangling_rows": 0, "expired": 0}
    dangling = [sha for sha, extension in rows.items() if not path_for(sha, extension).is_file()]
    report["dangling_rows"] = len(dangling)
    cutoff = time.time() - grace
    for path in root().glob("*/*") if root().is_dir() else []:
        kind = "temp_files" if path.name.startswith(atomic.TEMP_PREFIX) else "orphan_files"
        if kind == "orphan_files" and rows.get(path.stem) == path.suffix[1:]:
            continue
        try:
            old_enough = path.stat().st_mtime < cutoff
        except FileNotFoundError:  # removed meanwhile by another worker
            continue
        if old_enough:
            report[kind] += 1
            if repair:
                path.unlink(missing_ok=True)
    days = current_app.config["UPLOAD_RETENTION_DAYS"]
    expired = []
    if days:
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
        expired = list(db.session.scalars(select(Upload).where(Upload.created < since)))
    report["expired"] = len(expired)
    if repair:
        if dangling:
            db.session.execute(delete(Upload).where(Upload.sha256.in_(dangling)))
            db.session.commit()
        for upload in expired:
            remove(upload)
    return report


def get_or_404(sha256: str) -> Upload:
    if not SHA256.fullmatch(sha256):
        raise ApiError(400, "bad_param", name="sha256", value=sha256[:80])
    upload = db.session.scalar(select(Upload).where(Upload.sha256 == sha256))
    if upload is None:
        raise ApiError(404, "upload_not_found", sha256=sha256)
    return upload


@bp.get("/<sha256>")
@admin_required
def download(sha256):
    """The stored image bytes (admins only: uploads are students' photos)."""
    upload = get_or_404(sha256)
    return send_file(path_for(upload.sha256, upload.extension), mimetype=MIME_TYPES[upload.extension])


@bp.delete("/<sha256>")
@admin_required
def delete_upload(sha256):
    """Delete a stored image and its row (the predictions made on it stay, with its hash)."""
    upload = get_or_404(sha256)
    remove(upload)
    return jsonify(deleted=upload.as_json())


@click.group("uploads")
def uploads_cli():
    """Stored uploads: check consistency with the database, apply retention."""


@uploads_cli.command("check")
@click.option("--repair/--report-only", default=True, show_default=True)
def check_command(repair):
    """Find (and repair) orphan files, dangling rows and uploads older than the retention."""
    from app import create_app

    with create_app().app_context():
        report = check(repair=repair)
    click.echo(" ".join(f"{key}={value}" for key, value in report.items()) + (" (repaired)" if repair else ""))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
