"""Smoke test of a running RIIM server: ready, then one real prediction checked field by field.

    python scripts/smoke_test.py --url http://127.0.0.1:5000                 # against `make serve`
    python scripts/smoke_test.py --url http://127.0.0.1:8000 --photo dog.jpg --expect dog   # in a container

Standard library only, so it runs in the serving image (no TensorFlow, no curl). Waits for
``/api/v1/ready`` (the default model's ONNX session loaded), posts the photo to ``/api/v1/predict`` with
``store=0`` and checks the answer's JSON: the model, one result with probabilities (at most 1 in total) and a label
among them (and ``--expect``'s, when given), and the timings. The photo defaults to a real bundled one
(Debian darknet's dog, or scikit-image's cat) found by :mod:`models.real_data`. Exit code 0 = passed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bundled_photo() -> tuple[Path, str]:
    """A real photo shipped by an installed package, and what it shows."""
    from models import real_data

    for photo in real_data.photo_files():
        if photo.label in ("dog", "cat"):
            return photo.path, photo.label
    raise SystemExit("no bundled photo found: pass --photo (e.g. /usr/share/darknet/data/dog.jpg)")


def wait_ready(url: str, timeout: float) -> dict:
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/ready", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}: {error.read()[:300]!r}"
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(1)
    raise SystemExit(f"{url}/api/v1/ready not ready after {timeout:.0f} s ({last})")


def predict(url: str, photo: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{photo.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + photo.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/api/v1/predict?store=0", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise SystemExit(f"predict answered HTTP {error.code}: {error.read()[:500]!r}") from None


def check(answer: dict, ready: dict, expect: str | None) -> list[str]:
    """Every problem with the prediction's JSON (empty: passed)."""
    problems = []
    if answer.get("model", {}).get("name") != ready["model"]["name"]:
        problems.append(f"model {answer.get('model')} is not the ready one {ready['model']}")
    results = answer.get("results", [])
    if len(results) != 1:
        return problems + [f"expected 1 result, got {len(results)}"]
    result = results[0]
    probabilities = result.get("probabilities", {})
    if not probabilities or not all(0 <= p <= 1 for p in probabilities.values()) \
            or sum(probabilities.values()) > 1 + 1e-3:  # the default model's labels leave out "other" classes
        problems.append(f"probabilities {probabilities} are not probabilities of the labels")
    if not 0 <= result.get("confidence", -1) <= 1:
        problems.append(f"confidence {result.get('confidence')} is not in [0, 1]")
    if not result.get("unknown") and result.get("label") not in probabilities:
        problems.append(f"label {result.get('label')!r} is not one of {sorted(probabilities)}")
    if expect and result.get("label") != expect:
        problems.append(f"label {result.get('label')!r}, expected {expect!r}")
    if answer.get("timings", {}).get("inference_ms", -1) < 0:
        problems.append("no inference time")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the server (default: %(default)s)")
    parser.add_argument("--photo", type=Path, help="an image file (default: a real bundled photo)")
    parser.add_argument("--expect", help="the label the photo must get (default: the bundled photo's)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    if args.photo:
        photo, expect = args.photo, args.expect
    else:
        photo, shown = bundled_photo()
        expect = args.expect or shown
    started = time.monotonic()
    ready = wait_ready(url, args.timeout)
    print(f"ready after {time.monotonic() - started:.1f} s: {ready['model']['name']}:{ready['model']['version']}")
    answer = predict(url, photo)
    result = answer["results"][0] if answer.get("results") else {}
    print(f"{photo.name}: {result.get('label')} ({result.get('confidence', 0):.3f}), "
          f"inference {answer.get('timings', {}).get('inference_ms')} ms")
    problems = check(answer, ready, expect)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    print("smoke test passed" if not problems else "smoke test FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
