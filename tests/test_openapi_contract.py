"""The OpenAPI description is the contract (issue 20, item 11): Schemathesis, every check, against the live app.

The app (tiny ONNX model, no TensorFlow) is served by werkzeug on 127.0.0.1:0 from a thread, as in the
browser tests; an admin logs in through the API and Schemathesis gets the session cookie and the CSRF token as
headers, so admin and CSRF-protected operations are exercised beyond their 401/400. Schemathesis runs as its
CLI in a child process (``schemathesis run --checks all``: coverage, fuzzing and stateful phases) with
a fixed seed and a bounded number of examples per operation, and its JSON report must list no failure.

The description itself is checked with openapi-spec-validator.

Run by hand (prints the summary and writes the report to test-artifacts/schemathesis/):
``.venv/bin/python -m pytest tests/test_openapi_contract.py -s``.

This file is also Schemathesis's hooks module in the child (``SCHEMATHESIS_HOOKS``, module name
``_schemathesis_hooks``): there it makes ``format: binary`` (the only binary fields are images) generate real
small images — JPEG, PNG, WebP, GIF, BMP at least ``IMAGE_MIN_SIDE`` pixels a side — so that positive cases of
``/predict`` and ``/feature-maps`` reach the model instead of being refused as undecodable bytes.
"""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = 40  # per operation and phase, as in the run against `make run`
SEED = 20  # fixed: the same cases every run
TIMEOUT_S = 900
# What the description cannot express. `class` of /predict must name a class of the served model, and is
# read only with explain/anomaly (a dependency OpenAPI parameters cannot state): it is given a real one.
# 413 also rejects invalid data (Schemathesis's default list lacks it): e.g. more than MAX_FORM_PARTS images.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-path = "/api/v1/predict"
parameters = { "query.class" = "0" }
"""


def image_strategy():
    """Small decodable images in every accepted format (encoded bytes)."""
    from hypothesis import strategies as st
    from PIL import Image

    from models.preprocess import MIN_SIDE

    def encode(fmt: str, width: int, height: int, colour: tuple[int, int, int], noise: int) -> bytes:
        image = Image.new("RGB", (width, height), colour)
        if noise:
            image = Image.effect_noise((width, height), noise).convert("RGB")
            image = Image.blend(image, Image.new("RGB", (width, height), colour), 0.5)
        out = io.BytesIO()
        image.save(out, fmt)
        return out.getvalue()

    side = st.integers(MIN_SIDE, 64)
    return st.builds(encode, st.sampled_from(["JPEG", "PNG", "WEBP", "GIF", "BMP"]), side, side,
                     st.tuples(*[st.integers(0, 255)] * 3), st.sampled_from([0, 0, 32, 96]))


if __name__ == "_schemathesis_hooks":  # loaded by Schemathesis in the child process
    import schemathesis

    schemathesis.openapi.format("binary", image_strategy())
else:
    import pytest
    import requests

    from app.auth import create_user
    from tests.browser_support import ARTIFACTS, live_server
    from tests.conftest import ADMIN, serving_app

    @pytest.fixture
    def contract_app(tiny_registry, tmp_path, monkeypatch):
        """The app as served, on the tiny model, with an admin account. Rate limits are off: with them on,
        most positive /predict cases would be 429s (tests/test_security.py covers the limits). No job may run
        (JOBS_MAX_RUNNING 0: every valid start is a 409), so fuzzing checks the options, not real trainings
        (tests/test_jobs.py, test_job_kinds.py and each area's tests run those)."""
        monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
        application = serving_app({"MODELS_DIR": str(tiny_registry.root), "RATELIMIT_ENABLED": False,
                                   "JOBS_MAX_RUNNING": 0})
        with application.app_context():
            create_user(**ADMIN)
        return application

    @pytest.fixture
    def base_url(contract_app):
        werkzeug_log = logging.getLogger("werkzeug")
        level = werkzeug_log.level
        werkzeug_log.setLevel(logging.WARNING)  # not one line per request
        try:
            with live_server(contract_app) as url:
                yield url
        finally:
            werkzeug_log.setLevel(level)

    def admin_headers(base_url: str) -> dict[str, str]:
        """Log in through the API: the session cookie and the CSRF token of that session."""
        session = requests.Session()
        token = session.get(f"{base_url}/api/v1/auth/me", timeout=10).json()["csrf_token"]
        response = session.post(f"{base_url}/api/v1/auth/login", json=ADMIN, headers={"X-CSRFToken": token},
                                timeout=10)
        assert response.status_code == 200, response.text
        assert session.get(f"{base_url}/api/v1/labelling/projects", timeout=10).status_code == 200
        return {"Cookie": f"session={session.cookies['session']}", "X-CSRFToken": response.json()["csrf_token"]}

    def test_the_api_matches_its_openapi_description(base_url, tmp_path):
        report = ARTIFACTS / "schemathesis" / "report.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.unlink(missing_ok=True)
        headers = admin_headers(base_url)
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG)
        command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
                   f"{base_url}/api/v1/openapi.json",
                   "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
                   "--generation-database", "none", "--request-timeout", "30", "--no-color",
                   "--report", "json", "--report-json-path", str(report)]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).resolve()),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        started = time.perf_counter()
        run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        seconds = time.perf_counter() - started
        output = run.stdout[-20000:] + run.stderr[-5000:]
        assert report.is_file(), output
        summary = json.loads(report.read_text())
        cases = summary["test_cases"]
        print(f"\nschemathesis: {cases['generated']} cases, {cases['unique_failures']} failures, "
              f"{len(summary['errors'])} errors, {summary['operations']['tested']}/{summary['operations']['total']} "
              f"operations, {summary['running_time']:.1f} s ({seconds:.1f} s with start-up)")
        assert summary["complete"] and summary["operations"]["tested"] == summary["operations"]["total"], output
        assert cases["unique_failures"] == 0 and not summary["failures"], output
        assert not summary["errors"] and cases["errored"] == 0, output
        assert cases["generated"] >= 20 * summary["operations"]["total"], output  # it really ran
        assert run.returncode == 0, output

    def test_the_description_is_valid_openapi_3_1():
        from openapi_spec_validator import validate

        validate(json.loads((REPO / "app" / "openapi.json").read_text()))
