"""The per-request cost budget: decoder bombs are refused before decoding, the pixels of a request are
bounded, images are decoded one at a time, conversions make no float64 copy, multipart headers parse in
linear time, and repeated requests do not redo per-process work (file hashes, nvidia-smi).

The generators here are also used by ``benchmarks/hostile_cost.py``."""
from __future__ import annotations

import gc
import io
import struct
import subprocess
import time
import tracemalloc
import weakref

import numpy as np
import pytest
from PIL import Image

from app import api, device
from models import preprocess
from models.preprocess import ImageDecodeError, decode_rgb, load_image
from models.registry import sha256_file
from tests.test_hostile import encode, image_part, png, post

MB = 2**20


@pytest.fixture
def serving_registry(tiny_registry):
    """Nothing here depends on what the network sees: the tiny model (tests/tiny_model.py) serves."""
    return tiny_registry


pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


# --- generators -------------------------------------------------------------------------------------

def rle8_bmp(side: int = 7000) -> bytes:
    """A BMP (RLE8) declaring side×side pixels in a few bytes per row (each row: end of line): ~28 KB for
    7000² (now over the per-image cap), which Pillow's pure-Python RLE decoder took 11 s to expand."""
    pixels = b"\x00\x00" * side + b"\x00\x01"  # end of line per row, end of bitmap
    palette = b"\x00\x00\x00\x00" * 256
    offset = 14 + 40 + len(palette)
    header = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + palette + pixels


def many_scans_jpeg(side: int = 5000, extra: int = 1000) -> bytes:
    """A progressive JPEG of a flat side² image with its last (42-byte) scan repeated ``extra`` times: each
    scan is a pass over the whole image (1,000 extra scans: 14 s of decoding for 185 KB)."""
    data = encode(Image.new("RGB", (side, side), (120, 130, 140)), "JPEG", progressive=True, quality=90)
    last_scan = data[data.rindex(b"\xff\xda"):-2]
    return data[:-2] + last_scan * extra + data[-2:]


def flat_rgba_png(side: int = 4000) -> bytes:
    """A highly compressible RGBA PNG (16 MP in ~65 KB): 16 of them fit in about 1 MB."""
    return encode(Image.new("RGBA", (side, side), (10, 200, 30, 128)), "PNG", compress_level=9)


def grey16_png(side: int = 4000) -> bytes:
    """A 16-bit grey PNG (mode I;16 once opened)."""
    return encode(Image.fromarray(np.full((side, side), 30000, dtype=np.uint16)), "PNG")


def long_header_multipart(parts: int = 60, header_bytes: int = 150_000) -> tuple[bytes, str]:
    """(body, content type): ``parts`` form fields, each with a ``Content-Disposition`` of ``header_bytes``
    (many short parameters: quadratic to parse in werkzeug < 3.1.9)."""
    boundary = "riim-budget"
    parameters = ";a=b" * (header_bytes // 4)
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{index}"{parameters}\r\n\r\nv\r\n'.encode()
                    for index in range(parts)) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# --- decoder bombs ----------------------------------------------------------------------------------

def timed(send):
    started = time.perf_counter()
    response = send()
    return response, time.perf_counter() - started


def test_rle_bmp_bomb_is_refused_before_decoding(client):
    data = rle8_bmp(5000)  # under the per-image cap: refused for its encoding
    assert len(data) < 30_000 and Image.open(io.BytesIO(data)).size == (5000, 5000)
    response, seconds = timed(lambda: post(client, image_part(data, "bomb.bmp")))
    assert response.status_code == 400 and response.json["error"]["code"] == "slow_encoding", response.json
    assert seconds < 1.0  # was 200 after ~6 s of decoding (11 s for the 7000² one)
    assert post(client, image_part(rle8_bmp(), "bomb.bmp")).status_code == 413


def test_uncompressed_bmp_is_still_accepted(client):
    assert post(client, image_part(encode(Image.new("RGB", (64, 48), (200, 40, 40)), "BMP"))).status_code == 200


def test_progressive_jpeg_with_many_scans_is_refused(client):
    response, seconds = timed(lambda: post(client, image_part(many_scans_jpeg(), "scans.jpg")))
    assert response.status_code == 400 and response.json["error"]["code"] == "too_many_scans", response.json
    assert seconds < 1.0
    normal = encode(Image.new("RGB", (64, 48), (10, 20, 30)), "JPEG", progressive=True)
    assert load_image(normal).size == (64, 48)


# --- the request's pixel budget, one image at a time ------------------------------------------------

def test_request_pixel_budget_is_checked_before_decoding(client):
    data = flat_rgba_png()
    assert len(data) * 16 < 1.2 * MB
    response, seconds = timed(lambda: post(client, *[image_part(data, f"{i}.png") for i in range(16)]))
    assert response.status_code == 413, response.json  # was 200 after 6 s, all 16 held at once
    error = response.json["error"]
    assert error["code"] == "too_many_pixels" and "256" in error["message"]
    assert seconds < 1.0


def test_pixel_budget_is_configurable(app, client):
    small = encode(Image.new("RGB", (100, 100)), "PNG")
    app.config["REQUEST_MAX_PIXELS"] = 19_999
    assert post(client, image_part(small), image_part(small), query="?store=0").status_code == 413
    app.config["REQUEST_MAX_PIXELS"] = 20_000
    assert post(client, image_part(small), image_part(small), query="?store=0").status_code == 200


def test_images_are_decoded_one_at_a_time(client, monkeypatch):
    """When the next image is decoded, the previous one's pixels are gone."""
    alive, overlaps = [], []

    def tracked(*args, **kwargs):
        gc.collect()
        overlaps.append(sum(ref() is not None for ref in alive))
        image = decode_rgb(*args, **kwargs)
        alive.append(weakref.ref(image))
        return image

    monkeypatch.setattr(api, "decode_rgb", tracked)
    images = [image_part(encode(Image.new("RGB", (40 + i, 40), (i * 20, 0, 0)), "PNG"), f"{i}.png") for i in range(5)]
    for query in ("?store=0", "?store=0&explain=1&anomaly=1"):
        alive.clear(), overlaps.clear()
        response = post(client, *images, query=query)
        assert response.status_code == 200 and len(response.json["results"]) == 5
        assert overlaps == [0] * 5


def test_results_and_timings_keep_their_shape(client):
    images = [image_part(encode(Image.new("RGB", (64, 64), colour), "PNG"), f"{i}.png")
              for i, colour in enumerate(((220, 40, 20), (20, 40, 220)))]
    body = post(client, *images, query="?store=0").json
    assert [result["filename"] for result in body["results"]] == ["0.png", "1.png"]
    assert {"decode_ms", "preprocess_ms", "inference_ms", "total_ms"} <= set(body["timings"])


# --- conversions without float64 copies --------------------------------------------------------------

def test_16_bit_conversion_makes_no_full_size_float_copy():
    """numpy temporaries stay at a band of rows (tracemalloc sees numpy, not Pillow's own buffers)."""
    data = grey16_png()
    tracemalloc.start()
    try:
        image = load_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.getpixel((5, 5)) == (117, 117, 117)  # round(30000 / 65535 * 255)
    assert peak < 16 * MB  # was 16 MP × 8 B of float64 and its temporaries: over 400 MB


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "I;16", "I", "F", "1"])
def test_banded_conversion_matches_whole_image_conversion(mode, monkeypatch):
    """Converting in bands gives the same pixels as one whole-image conversion (bands of 7 rows here)."""
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (50, 30, 4), dtype=np.uint8), "RGBA")
    if mode in ("I;16", "I", "F"):
        image = Image.fromarray(rng.integers(0, 65536, (50, 30)).astype({"I;16": np.uint16, "I": np.int32,
                                                                         "F": np.float32}[mode]))
    else:
        image = base.convert(mode) if mode != "P" else base.convert("P", palette=Image.Palette.ADAPTIVE)
    whole = preprocess.to_rgb(image)
    monkeypatch.setattr(preprocess, "BAND_PIXELS", 7 * 30)
    assert np.array_equal(np.asarray(preprocess.to_rgb(image)), np.asarray(whole))


def test_rgb_images_are_not_copied():
    image = Image.new("RGB", (20, 20))
    assert preprocess.to_rgb(image) is image


# --- multipart headers ------------------------------------------------------------------------------

def test_long_multipart_headers_are_answered_quickly(client):
    """60 parts with a 150 KB Content-Disposition each (9 MB, under the 10 MB body limit) get a 4xx in
    under a second: werkzeug ≥ 3.1.9 refuses long part headers (3.1.3 parsed each in ~0.3 s, quadratically:
    about 20 s in all). Measured here: see the closing note of issue 20; the bound leaves a wide margin
    over the measured time on the shared 2-core machine and is far below the old cost."""
    body, content_type = long_header_multipart()
    assert len(body) < 10 * MB
    response, seconds = timed(lambda: client.post("/api/v1/predict", data=body, content_type=content_type))
    assert 400 <= response.status_code < 500 and response.is_json
    assert seconds < 1.0, seconds


# --- repeated requests ------------------------------------------------------------------------------

def test_model_files_are_hashed_once_per_process(client, tiny_registry, monkeypatch):
    calls = []
    monkeypatch.setattr(api, "sha256_file", lambda path: calls.append(path) or sha256_file(path))
    monkeypatch.setattr(api, "_VERIFIED", {})
    version = tiny_registry.current("animals")
    url = f"/api/v1/models/animals/versions/{version}/files/model.onnx"
    first = client.get(url)
    assert first.status_code == 200
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert client.get(url).status_code == 200
    assert len(calls) == 1  # was one hash per request, 304s included


def test_a_changed_model_file_is_hashed_again_and_refused(client, tiny_registry, monkeypatch):
    monkeypatch.setattr(api, "_VERIFIED", {})
    version = tiny_registry.current("animals")
    url = f"/api/v1/models/animals/versions/{version}/files/head.npz"
    assert client.get(url).status_code == 200
    path = tiny_registry.path("animals", version) / "head.npz"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"tampered")
        assert client.get(url).status_code == 503
    finally:
        path.write_bytes(original)
    assert client.get(url).status_code == 200


def test_nvidia_smi_is_probed_once(monkeypatch):
    runs = []
    monkeypatch.setattr(device.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(device.subprocess, "run", lambda command, **kwargs: runs.append(command) or subprocess.CompletedProcess(
        command, 0, stdout="NVIDIA T4, 15360, 550.54\n", stderr=""))
    monkeypatch.setattr(device, "cpu", lambda: {})
    device.gpus.cache_clear()
    try:
        for _ in range(3):
            assert device.describe()["gpus"] == [{"name": "NVIDIA T4", "memory_mib": 15360, "driver": "550.54"}]
    finally:
        device.gpus.cache_clear()
    assert len(runs) == 1


# --- the decoder contract still holds --------------------------------------------------------------

def test_hostile_headers_raise_only_decode_errors():
    for data in (rle8_bmp(64), many_scans_jpeg(64, 40), png(9000, 9000)):
        with pytest.raises(ImageDecodeError):
            load_image(data)
