"""Run a TF.js model in real headless Chromium (Debian ``chromium`` driven by Playwright, wasm backend).

Reusable by tests and the parity report: :func:`serve_folders` serves local folders on ``127.0.0.1:0``
from a thread; :func:`chromium_page` opens a page on it with the vendored TF.js loaded;
:func:`run_tfjs` feeds an already-preprocessed NHWC float32 batch to a GraphModel and returns its
outputs plus single-image latencies measured inside the page. Nothing leaves the loopback interface.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VENDOR_DIR = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INDEX_HTML = b"""<!doctype html><meta charset="utf-8"><title>riim tfjs</title>
<script src="/vendor/tfjs/tf.min.js"></script><script src="/vendor/tfjs/tf-backend-wasm.min.js"></script>"""

# Runs in the page: load the model on the wasm backend, predict image by image, time execute + dataSync.
RUN_JS = """async ({modelUrl, inputUrl, shape, outputs, repeats}) => {
  tf.wasm.setWasmPaths('/vendor/tfjs/');
  await tf.setBackend('wasm');
  await tf.ready();
  const model = await tf.loadGraphModel(modelUrl);
  const outputNames = Object.keys(model.modelSignature.outputs);
  const data = new Float32Array(await (await fetch(inputUrl)).arrayBuffer());
  const batch = tf.tensor4d(data, shape);
  const missing = outputs.filter((name) => !outputNames.includes(name));
  if (missing.length) throw new Error(`outputs ${missing} not in ${outputNames}`);
  const results = Object.fromEntries(outputs.map((name) => [name, []]));
  const images = [];
  for (let i = 0; i < shape[0]; i++) images.push(batch.slice([i, 0, 0, 0], [1, ...shape.slice(1)]));
  for (let i = 0; i < images.length; i++) {
    const y = [].concat(model.execute(images[i], outputs));
    outputs.forEach((name, k) => results[name].push(Array.from(y[k].dataSync())));
    tf.dispose(y);
  }
  const latencies = [];
  for (let r = 0; r < repeats; r++) {
    const started = performance.now();
    const y = [].concat(model.execute(images[r % images.length], outputs));
    y[0].dataSync();
    latencies.push(performance.now() - started);
    tf.dispose(y);
  }
  return {results, latencies, backend: tf.getBackend(), outputNames};
}"""


class BrowserError(RuntimeError):
    """Chromium, Playwright or the vendored TF.js files are missing, or the page failed."""


@dataclass
class TfjsRun:
    outputs: dict[str, np.ndarray]  # output name → (N, ...) float32
    latencies_ms: list[float]  # single-image execute + dataSync, in the page
    backend: str


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves ``/`` (the page) and ``/<prefix>/…`` from the folder mapped to that prefix."""

    def __init__(self, *args, routes: dict[str, Path], **kwargs):
        self.routes = routes
        super().__init__(*args, directory=tempfile.gettempdir(), **kwargs)

    def translate_path(self, path):
        prefix, _, rest = path.split("?", 1)[0].lstrip("/").partition("/")
        root = self.routes.get(prefix)
        if root is None:
            return "/nonexistent"
        target = (root / rest).resolve()
        return str(target) if target.is_relative_to(root.resolve()) else "/nonexistent"

    def do_GET(self):  # noqa: N802 — http.server's naming
        if self.path in ("/", "/index.html"):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(INDEX_HTML)))
            self.end_headers()
            self.wfile.write(INDEX_HTML)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_folders(routes: dict[str, Path]):
    """Serve ``{prefix: folder}`` on 127.0.0.1 at a free port in a thread; yields the base URL."""
    handler = functools.partial(_Handler, routes={k: Path(v) for k, v in routes.items()})
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield url


@contextlib.contextmanager
def serving(server):
    """Run a loopback ``socketserver``-style server (stdlib or werkzeug) in a thread; yields its base URL."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium_page(routes: dict[str, Path]):
    """A headless Chromium page at ``/`` with TF.js (+ wasm backend) loaded; ``routes`` add folders."""
    if not (VENDOR_DIR / "tfjs" / "tf.min.js").is_file():
        raise BrowserError(f"TF.js is not vendored in {VENDOR_DIR}: run `make setup`")
    if not Path(CHROMIUM).is_file():
        raise BrowserError(f"{CHROMIUM} not found: apt-get install chromium (done by `make setup`)")
    from playwright.sync_api import sync_playwright

    with serve_folders({"vendor": VENDOR_DIR, **routes}) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(base + "/")
            page.wait_for_function("() => window.tf && tf.wasm")
            yield page
            if errors:
                raise BrowserError("page errors: " + "; ".join(errors))
        finally:
            browser.close()


def run_tfjs(model_dir: Path, batch: np.ndarray, outputs: list[str], repeats: int = 20) -> TfjsRun:
    """Run the GraphModel in ``model_dir`` (``model.json``) on ``batch`` (N, H, W, 3) in Chromium; ``outputs``
    are names of its ``serving_default`` signature (the card's output names)."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "inputs.bin").write_bytes(batch.tobytes())
        with chromium_page({"model": Path(model_dir), "data": Path(scratch)}) as page:
            try:
                answer = page.evaluate(RUN_JS, {"modelUrl": "/model/model.json", "inputUrl": "/data/inputs.bin",
                                                "shape": list(batch.shape), "outputs": outputs,
                                                "repeats": repeats})
            except Exception as error:  # noqa: BLE001 — Playwright wraps page errors in its own types
                raise BrowserError(f"TF.js failed in Chromium: {error}") from None
    return TfjsRun({name: np.asarray(rows, dtype=np.float32) for name, rows in answer["results"].items()},
                   answer["latencies"], answer["backend"])
