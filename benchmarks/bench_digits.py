"""Benchmark: the digit networks (the document's MLP, the small CNN) answering on the server and in the browser.

The real app is served on 127.0.0.1 with a registry holding `riim digits train`'s models. For each model:

- server: ``POST /api/v1/digits/predict?model=…`` with the 28×28 array of each held-out MNIST test digit
  (JSON, so no image decoding), round trip p50/p95 and the ONNX Runtime call (``inference_ms``) p50/p95;
- browser: the /digits page's TF.js GraphModel on the wasm backend, ``model.execute`` on the same digits
  (probabilities and layer outputs, as the page asks), p50/p95; after the server passes, never overlapping;
- the ratio browser / server-inference, measured side by side, and whether the top-1 answers agree.

Usage::

    .venv/bin/python benchmarks/bench_digits.py --models-dir DIR [--digits 200]

``DIR`` is a registry where `riim digits train --models-dir DIR` published digits-mlp and digits-cnn.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the browser helpers live in tests/

from app import create_app, prepare  # noqa: E402
from app.digits import MODELS  # noqa: E402
from models import digits_preprocess  # noqa: E402
from tests.browser_support import chromium, guard_loopback, live_server  # noqa: E402
from training.digits_data import mnist_arrays, split  # noqa: E402

# Runs in the /digits page: the version's TF.js model on the wasm backend, each digit once (after warm-up).
EDGE_JS = """async ({ name, digits }) => {
  const { wasmBackend } = await import('/static/js/edge.js');
  await wasmBackend();
  const info = await (await fetch(`/api/v1/models/${name}`)).json();
  const card = info.versions.find((v) => v.version === info.current);
  const model = await tf.loadGraphModel(`/api/v1/models/${name}/versions/${info.current}/files/${card.files.tfjs.path}`);
  const names = [card.outputs.probabilities, ...card.outputs.layers];
  const run = (pixels) => tf.tidy(() => {
    const outs = model.execute(tf.tensor(pixels, [1, 28, 28]), names);
    return outs.map((o) => o.dataSync());
  });
  for (let i = 0; i < 10; i += 1) run(digits[i % digits.length]);
  const times = []; const answers = [];
  for (const pixels of digits) {
    const started = performance.now();
    const outs = run(pixels);
    times.push(performance.now() - started);
    answers.push(outs[0].indexOf(Math.max(...outs[0])));
  }
  return { times, answers, backend: tf.getBackend() };
}"""


def percentiles(values) -> dict:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", required=True, help="registry with digits-mlp and digits-cnn")
    parser.add_argument("--digits", type=int, default=200, help="held-out MNIST test digits to time")
    args = parser.parse_args()

    images, labels = mnist_arrays()
    rows = split(labels)["test"][:args.digits]
    digits = []
    for row in rows:
        result = digits_preprocess.preprocess(images[row] * 255.0)
        digits.append(result.input if result.input is not None else images[row])
    print(f"{len(digits)} held-out MNIST test digits, through the shared preprocessing", flush=True)
    instance = Path(tempfile.mkdtemp())
    app = create_app({"MODELS_DIR": args.models_dir, "RATELIMIT_ENABLED": False, "STORE_UPLOADS": False,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'riim.sqlite3'}"})
    prepare(app)
    report = {}
    with live_server(app) as url, chromium() as browser:
        import requests

        session = requests.Session()
        for kind, name in MODELS.items():
            round_trips, inference, server_answers = [], [], []
            for index, pixels in enumerate([digits[0]] * 5 + digits):  # 5 warm-up calls
                started = time.perf_counter()
                response = session.post(f"{url}/api/v1/digits/predict?model={kind}", json={"pixels": pixels.tolist()})
                elapsed = (time.perf_counter() - started) * 1e3
                response.raise_for_status()
                if index >= 5:
                    round_trips.append(elapsed)
                    inference.append(response.json()["results"][0]["inference_ms"])
                    server_answers.append(int(response.json()["results"][0]["digit"]))
            print(f"{name}: server done", flush=True)
            context = browser.new_context()
            guard_loopback(context)
            page = context.new_page()
            page.goto(f"{url}/digits")
            edge = page.evaluate(EDGE_JS, {"name": name, "digits": [d.ravel().tolist() for d in digits]})
            context.close()
            print(f"{name}: browser done ({edge['backend']})", flush=True)
            accuracy = float(np.mean(np.asarray(server_answers) == labels[rows]))
            report[name] = {
                "server_round_trip_ms": percentiles(round_trips), "server_inference_ms": percentiles(inference),
                "browser_ms": percentiles(edge["times"]),
                "browser_over_server_inference": statistics.median(edge["times"]) / statistics.median(inference),
                "top1_agreement": float(np.mean(np.asarray(edge["answers"]) == np.asarray(server_answers))),
                "server_accuracy": accuracy}
    print(f"\n{'model':<12}{'server round trip p50/p95':>28}{'ONNX Runtime p50/p95':>24}{'browser TF.js p50/p95':>24}"
          f"{'browser/ORT':>13}{'agree':>8}")
    for name, row in report.items():
        pair = lambda key: f"{row[key]['p50']:.2f} / {row[key]['p95']:.2f} ms"  # noqa: E731
        print(f"{name:<12}{pair('server_round_trip_ms'):>28}{pair('server_inference_ms'):>24}{pair('browser_ms'):>24}"
              f"{row['browser_over_server_inference']:>12.0f}×{row['top1_agreement']:>8.1%}")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
