"""Hostile input against the real app: every case is generated here and gets its documented 4xx JSON
error with a message (never a 5xx); tricky but valid images are decoded correctly; the server stays
healthy. Ends with a Hypothesis fuzz test of the decoding path."""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import select

from app.auth import User
from app.db import db
from app.storage import Upload
from models.preprocess import ImageDecodeError, load_image
from tests import tiny_model
from tests.conftest import ADMIN

# Pillow warns (then we refuse) for the 50-100 MP headers; above 100 MP it raises, which we also map to 413.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


@pytest.fixture
def serving_registry(tiny_registry):
    """Nothing here depends on what the network sees: the tiny model (tests/tiny_model.py) serves."""
    return tiny_registry


# --- generated files --------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, rows: bytes | None = None, bit_depth: int = 8, color: int = 2) -> bytes:
    """A PNG written by hand, so the header may declare anything; ``rows`` are the raw scanlines."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(rows, 9)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + idat + png_chunk(b"IEND", b"")


def decompression_bomb(side: int = 12000) -> bytes:
    """A ~20 kB PNG that would decode to side² pixels (1-bit grey, all zeros)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def half(data: bytes) -> bytes:
    """The first half of a file: the header is intact, the pixel data is cut."""
    return data[: len(data) // 2]


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat.jpg", b"not really")
    return buffer.getvalue()


def cat(photos, size=(96, 64)) -> Image.Image:
    return photos["skimage/chelsea"].image.resize(size)


# --- requests ---------------------------------------------------------------------------------------

def post(client, *parts, query="", **kwargs):
    """POST multipart ``parts`` = (field, bytes, filename[, mimetype]) to /api/v1/predict."""
    data = {}
    for field, content, filename, *mimetype in parts:
        data.setdefault(field, []).append((io.BytesIO(content), filename, *mimetype))
    return client.post(f"/api/v1/predict{query}", data=data, content_type="multipart/form-data", **kwargs)


def image_part(content: bytes, filename: str = "photo.jpg", *mimetype):
    return ("image", content, filename, *mimetype)


@dataclass
class Case:
    name: str
    send: Callable  # (client, photos) -> response
    status: int
    code: str


def csrf_token(client) -> str:
    return client.get("/api/v1/auth/me").json["csrf_token"]


def unauthenticated_delete(client, photos):
    return client.delete("/api/v1/uploads/" + "a" * 64, headers={"X-CSRFToken": csrf_token(client)})


def non_admin_delete(client, photos):
    from app.auth import create_user

    with client.application.app_context():
        create_user("student", "student-password", is_admin=False)
    token = csrf_token(client)
    login = client.post("/api/v1/auth/login", json={"username": "student", "password": "student-password"},
                        headers={"X-CSRFToken": token})
    assert login.status_code == 200
    return client.delete("/api/v1/uploads/" + "a" * 64, headers={"X-CSRFToken": login.json["csrf_token"]})


def admin_call(method: str, path: str):
    def send(client, photos):
        from app.auth import create_user

        with client.application.app_context():
            if db.session.scalar(select(User).where(User.username == ADMIN["username"])) is None:
                create_user(**ADMIN)
        login = client.post("/api/v1/auth/login", json=ADMIN, headers={"X-CSRFToken": csrf_token(client)})
        return client.open(path, method=method, headers={"X-CSRFToken": login.json["csrf_token"]})
    return send


def over_rate(client, photos):
    """A fourth request in a minute from one client address, with the limit lowered to 3 per minute."""
    config, content = client.application.config, encode(cat(photos), "PNG")
    other = {"environ_base": {"REMOTE_ADDR": "10.0.0.7"}}
    saved, config["RATE_LIMIT_PREDICT"] = config["RATE_LIMIT_PREDICT"], "3 per minute"
    try:
        statuses = [post(client, image_part(content), query="?store=0", **other).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        return post(client, image_part(content), **other)
    finally:
        config["RATE_LIMIT_PREDICT"] = saved


MB = 2**20
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}  # as the Analyze page sends: its uploads are stored
CASES = [
    Case("oversize body (11 MB)", lambda c, p: post(c, image_part(b"\xff" * (11 * MB))), 413, "too_large"),
    Case("decompression bomb PNG (144 MP in 20 kB)", lambda c, p: post(c, image_part(decompression_bomb())),
         413, "image_too_large"),
    Case("declared 20000x20000 PNG", lambda c, p: post(c, image_part(png(20000, 20000))), 413, "image_too_large"),
    Case("declared 8000x8000 PNG (64 MP, over the cap)", lambda c, p: post(c, image_part(png(8000, 8000))),
         413, "image_too_large"),
    Case("declared 20000x20000 BMP", lambda c, p: post(c, image_part(
        b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 20000, 20000, 1, 24,
                                                                    0, 0, 2835, 2835, 0, 0))),
         413, "image_too_large"),
    Case("1x1 PNG", lambda c, p: post(c, image_part(encode(Image.new("RGB", (1, 1)), "PNG"))), 400, "image_too_small"),
    Case("1x4000 sliver", lambda c, p: post(c, image_part(encode(Image.new("L", (1, 4000)), "PNG"))),
         400, "image_too_small"),
    Case("truncated JPEG", lambda c, p: post(c, image_part(half(encode(cat(p), "JPEG")))), 400, "image_damaged"),
    Case("truncated PNG", lambda c, p: post(c, image_part(half(encode(cat(p), "PNG")))), 400, "image_damaged"),
    Case("truncated WebP", lambda c, p: post(c, image_part(half(encode(cat(p), "WEBP")))), 400, "not_an_image"),  # the RIFF size no longer matches
    Case("PNG header, no pixel data", lambda c, p: post(c, image_part(png(64, 64))), 400, "image_damaged"),
    Case("zero bytes", lambda c, p: post(c, image_part(b"")), 400, "empty_file"),
    Case("text as .jpg", lambda c, p: post(c, image_part(b"hello, I am a cat\n" * 10, "cat.jpg", "image/jpeg")),
         400, "not_an_image"),
    Case("HTML as .jpg", lambda c, p: post(c, image_part(b"<html><script>alert(1)</script></html>", "x.jpg")),
         400, "not_an_image"),
    Case("SVG with script as .png", lambda c, p: post(c, image_part(
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "x.png", "image/png")),
         400, "not_an_image"),
    Case("PDF as .jpg", lambda c, p: post(c, image_part(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "a.jpg")),
         400, "not_an_image"),
    Case("ZIP as .jpg", lambda c, p: post(c, image_part(zip_archive(), "a.jpg", "image/jpeg")), 400, "not_an_image"),
    Case("TIFF (a real image, not an accepted format)", lambda c, p: post(c, image_part(encode(cat(p), "TIFF"))),
         400, "not_an_image"),
    Case("ICO as .png", lambda c, p: post(c, image_part(encode(cat(p), "ICO"), "a.png")), 400, "not_an_image"),
    Case("GIF/PHP polyglot", lambda c, p: post(c, image_part(
        b"GIF89a\x10\x00\x10\x00\x00\x00\x00<?php system($_GET['c']); ?>", "shell.php.gif")), 400, "not_an_image"),
    Case("JPEG magic followed by HTML", lambda c, p: post(c, image_part(b"\xff\xd8\xff\xe0<html>hi</html>")),
         400, "not_an_image"),
    Case("wrong Content-Type (JSON body)", lambda c, p: c.post("/api/v1/predict", json={"image": "cat.png"}),
         400, "missing_field"),
    Case("multipart without boundary", lambda c, p: c.post("/api/v1/predict", data=b"--x\r\n",
                                                           content_type="multipart/form-data"),
         400, "missing_field"),
    Case("missing field (named 'file')", lambda c, p: post(c, ("file", encode(cat(p), "PNG"), "cat.png")),
         400, "missing_field"),
    Case("too many images (17)", lambda c, p: post(c, *[image_part(encode(cat(p), "PNG"))] * 17),
         400, "too_many_images"),
    Case("too many parts (100)", lambda c, p: post(c, *[("x", b"1", "x.txt")] * 100), 413, "form_too_large"),
    Case("oversized text field (1 MB)", lambda c, p: c.post("/api/v1/predict", data={"note": "x" * MB},
                                                            content_type="multipart/form-data"),
         413, "form_too_large"),
    Case("bad query: store=maybe", lambda c, p: post(c, image_part(encode(cat(p), "PNG")), query="?store=maybe"),
         400, "bad_param"),
    Case("bad query: model=../../etc", lambda c, p: post(c, image_part(encode(cat(p), "PNG")), query="?model=../../etc"),
         404, "unknown_model"),
    Case("GET on predict", lambda c, p: c.get("/api/v1/predict"), 405, "method_not_allowed"),
    Case("unknown endpoint", lambda c, p: c.get("/api/v1/../../etc/passwd"), 404, "not_found"),
    Case("CSRF-less POST (login)", lambda c, p: c.post("/api/v1/auth/login", json=ADMIN), 400, "csrf_failed"),
    Case("forged CSRF token", lambda c, p: c.post("/api/v1/auth/login", json=ADMIN,
                                                  headers={"X-CSRFToken": "forged.token.value"}), 400, "csrf_failed"),
    Case("wrong password", lambda c, p: c.post("/api/v1/auth/login", json={"username": "admin", "password": "guess"},
                                               headers={"X-CSRFToken": csrf_token(c)}), 401, "bad_credentials"),
    Case("login with a JSON list", lambda c, p: c.post("/api/v1/auth/login", json=["admin"],
                                                       headers={"X-CSRFToken": csrf_token(c)}),
         400, "missing_field"),
    Case("unauthenticated admin call", unauthenticated_delete, 401, "login_required"),
    Case("admin call by a non-admin", non_admin_delete, 403, "admin_only"),
    Case("admin call, bad hash", admin_call("DELETE", "/api/v1/uploads/not-a-hash"), 400, "bad_param"),
    Case("admin call, unknown upload", admin_call("DELETE", "/api/v1/uploads/" + "0" * 64), 404, "upload_not_found"),
    Case("over-rate requests", over_rate, 429, "rate_limited"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_gets_documented_4xx(client, photos, case):
    response = case.send(client, photos)
    assert response.status_code == case.status, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == case.code and error["status"] == case.status
    assert len(error["message"]) > 10 and "{" not in error["message"]  # a filled-in sentence
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_suite_is_large_enough():
    assert len(CASES) >= 30


def test_error_messages_come_in_both_languages(client):
    spanish = post(client, image_part(b"%PDF-1.4", "a.jpg")).get_json()["error"]["message"]
    english = post(client, image_part(b"%PDF-1.4", "a.jpg"), query="?lang=en").get_json()["error"]["message"]
    assert "imagen" in spanish and "image" in english and spanish != english


def test_server_stays_healthy_after_the_hostile_suite(client, photos):
    for case in CASES:
        assert case.send(client, photos).status_code < 500, case.name
    assert client.get("/api/v1/health").get_json() == {"status": "ok"}
    response = post(client, image_part(photos["skimage/chelsea"].png_bytes(), "chelsea.png"))
    assert response.status_code == 200
    assert response.get_json()["results"][0]["label"] == tiny_model.labels([photos["skimage/chelsea"].image])[0]


# --- tricky but valid: decided by decoding, converted correctly ------------------------------------

def test_format_is_decided_by_the_bytes_not_name_or_mime(client, photos):
    response = post(client, image_part(photos["skimage/rocket"].png_bytes(), "report.pdf.exe", "application/pdf"))
    assert response.status_code == 200
    assert response.get_json()["results"][0]["label"] == tiny_model.labels([photos["skimage/rocket"].image])[0]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_every_accepted_format_decodes(photos, fmt):
    image = load_image(encode(cat(photos), fmt))
    assert image.mode == "RGB" and image.size == (96, 64) and image.info["format"] == fmt


def test_cmyk_jpeg_keeps_its_colours():
    red = Image.new("RGB", (32, 32), (220, 30, 30))
    pixel = load_image(encode(red.convert("CMYK"), "JPEG", quality=95)).getpixel((16, 16))
    assert pixel[0] > 180 and pixel[1] < 80 and pixel[2] < 80


def test_16_bit_grey_and_rgb_are_rescaled():
    grey = Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16))
    assert grey.mode == "I;16"
    assert load_image(encode(grey, "PNG")).getpixel((0, 0)) == (128, 128, 128)
    rows = b"".join(b"\x00" + b"\xff\xff\x80\x00\x00\x00" * 16 for _ in range(16))  # 16-bit RGB written by hand
    assert load_image(png(16, 16, rows, bit_depth=16, color=2)).getpixel((3, 3)) == (255, 128, 0)


def test_palette_transparency_and_la_are_composited_on_white():
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 8, 16))
    image = load_image(encode(palette, "PNG", transparency=0))
    assert image.getpixel((2, 2)) == (255, 0, 0) and image.getpixel((12, 2)) == (255, 255, 255)
    grey_alpha = Image.new("LA", (16, 16), (0, 0))
    assert load_image(encode(grey_alpha, "PNG")).getpixel((5, 5)) == (255, 255, 255)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert load_image(data).getpixel((8, 8)) == (255, 0, 0)


def test_exif_rotated_upload_is_stored_upright(client, photos):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer must rotate 90° clockwise
    data = encode(cat(photos).rotate(90, expand=True), "JPEG", exif=exif)
    assert post(client, image_part(data), headers=SAME_ORIGIN).status_code == 200
    with client.application.app_context():
        (upload,) = db.session.scalars(select(Upload))
    assert (upload.width, upload.height) == (96, 64)


@pytest.mark.parametrize("filename, stored", [
    ("../../../../etc/passwd.png", "passwd.png"),
    ("..\\..\\windows\\system32\\cat.png", "windowssystem32cat.png"),  # werkzeug 3.1.9 drops backslashes
    ("gato 🐱 niño.png", "gato 🐱 niño.png"),
    ("evil\x00name\x07\x1b.png", "evilname.png"),
    (".htaccess", "htaccess"),
])
def test_client_filenames_are_only_sanitised_metadata(client, photos, filename, stored):
    response = post(client, image_part(encode(cat(photos), "PNG"), filename), headers=SAME_ORIGIN)
    assert response.status_code == 200 and response.get_json()["results"][0]["filename"] == stored
    with client.application.app_context():
        (upload,) = db.session.scalars(select(Upload))
    assert upload.filename == stored
    files = [path for path in Path(client.application.instance_path).rglob("*") if path.is_file()
             and "uploads" in path.parts]
    assert [p.name for p in files] == [f"{upload.sha256}.png"]


# --- fuzzing the decoding path ----------------------------------------------------------------------

def check_decode(data: bytes) -> None:
    """The documented contract: an RGB image or ImageDecodeError, nothing else."""
    try:
        image = load_image(data)
    except ImageDecodeError:
        return
    assert image.mode == "RGB" and min(image.size) >= 8


@settings(max_examples=150, deadline=None, database=None)
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    check_decode(data)


SEEDS = {}


def seeds() -> dict[str, bytes]:
    """Small real photos in every accepted format (the fuzz corpus), encoded once."""
    if not SEEDS:
        from skimage import data as skimage_data

        photo = Image.fromarray(skimage_data.chelsea()).resize((40, 27))
        for fmt in ("JPEG", "PNG", "WEBP", "GIF", "BMP"):
            SEEDS[fmt] = encode(photo, fmt)
    return SEEDS


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["JPEG", "PNG", "WEBP", "GIF", "BMP"]), st.data())
def test_fuzz_mutated_real_images(fmt, data):
    blob = bytearray(seeds()[fmt])
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        position = data.draw(st.integers(0, len(blob) - 1), label="position")
        action = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), label="action")
        if action == "flip":
            blob[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "set":
            blob[position] = data.draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif action == "insert":
            blob[position:position] = data.draw(st.binary(min_size=1, max_size=16))
        elif action == "delete" and len(blob) > 1:
            del blob[position]
        elif action == "truncate":
            del blob[max(position, 1):]
    check_decode(bytes(blob))
