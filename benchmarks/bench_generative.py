"""Benchmark: the autoencoder and the GAN as served — figures read from their cards (written when
`riim train-autoencoder` / `riim train-gan` ran) and latencies measured now, side by side.

- Autoencoder: test reconstruction MSE; OOD AUROC of reconstruction error vs the image model's energy /
  Mahalanobis scores on the same photos (card ``anomaly.evaluation``); POST /api/v1/autoencoder/reconstruct
  latency p50 for one photo over HTTP on loopback.
- GAN: training time (card), the classifier-confidence quality figure (card); generation latency p50 of one
  digit in real Chromium (TF.js wasm, the lesson page's own ``generate``) vs POST /api/v1/gan/sample (ONNX
  Runtime, HTTP on loopback).

Usage::

    .venv/bin/python benchmarks/bench_generative.py [--models-dir models/store] [--repeats 50]

It needs both models published and current (run the two commands first); the machine's load is printed.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the browser helpers live in tests/

from app import create_app, prepare  # noqa: E402
from models.registry import DEFAULT_ROOT, Registry  # noqa: E402
from tests.browser_support import chromium, guard_loopback, live_server  # noqa: E402

# Runs in the gans lesson page: load the generator like the lesson does and time `generate` one digit at a time.
BROWSER_JS = """async ({repeats}) => {
  const lesson = await import('/static/js/lessons/gans.js');
  const edge = await import('/static/js/edge.js');
  const body = await (await fetch('/api/v1/models/digits-gan')).json();
  const card = body.versions.find((c) => c.version === body.current);
  await edge.wasmBackend();
  const model = await tf.loadGraphModel(`/api/v1/models/digits-gan/versions/${card.version}/files/${card.files.tfjs.path}`);
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = card.output.size;
  const z = new Array(card.latent.dim).fill(0.5);
  lesson.generate(model, card, z, canvas);
  const times = [];
  for (let i = 0; i < repeats; i++) { z[i % z.length] = Math.sin(i); times.push(lesson.generate(model, card, z, canvas)); }
  return {times, backend: tf.getBackend()};
}"""


def p50(values) -> float:
    return statistics.median(values)


def http_times(client_call, repeats: int) -> list[float]:
    client_call()  # warm-up: session load
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        client_call()
        times.append((time.perf_counter() - started) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"load average (1/5/15 min): {os.getloadavg()}  cores: {os.cpu_count()}", flush=True)
    registry = Registry(args.models_dir)
    ae, gan = registry.card("fashion-autoencoder"), registry.card("digits-gan")
    print(f"\nautoencoder {ae['name']}:{ae['version']}: test reconstruction MSE {ae['metrics']['reconstruction_mse']['test']:.4f} "
          f"({ae['metrics']['reconstruction_mse']['test_images']} Fashion-MNIST test photos), threshold {ae['anomaly']['threshold']:.4f}, "
          f"trained in {ae['training']['seconds']:.0f} s")
    report = ae["anomaly"].get("evaluation")
    if report:
        print(f"  OOD AUROC (normal: {report['in_distribution']['images']} Fashion-MNIST test photos; image model "
              f"{report['image_model']['name']}:{report['image_model']['version']})")
        for kind, row in report["out_of_distribution"].items():
            print(f"  {kind:>7} ({row['images']:>4}): reconstruction {row['reconstruction_mse']:.3f} | energy {row['energy']:.3f} | "
                  f"mahalanobis {row.get('mahalanobis', float('nan')):.3f} | mahalanobis refit {row['mahalanobis_refit']:.3f}")
    q = gan["metrics"]["quality"]
    print(f"\nGAN {gan['name']}:{gan['version']}: trained {gan['training']['seconds']:.0f} s "
          f"({gan['samples']['epochs']} epochs, {gan['training']['config']['images']} digits, "
          f"{gan['training']['seconds_per_epoch']:.1f} s/epoch)")
    print(f"  quality: classifier ({q['classifier_accuracy']:.3f} accurate on real held-out digits) confident (p >= "
          f"{q['confident_at']}) on {q['generated']['confident_share']:.1%} of {q['generated']['images']} generated vs "
          f"{q['real_heldout']['confident_share']:.1%} of real; mean confidence {q['generated']['mean_confidence']:.3f} vs "
          f"{q['real_heldout']['mean_confidence']:.3f}; digit variety {q['generated']['class_spread']:.3f} vs "
          f"{q['real_heldout']['class_spread']:.3f}")

    from training.real_photos import photo

    astronaut = photo("skimage/astronaut").png_bytes()
    with tempfile.TemporaryDirectory() as instance:
        os.environ["RIIM_INSTANCE_PATH"] = instance
        app = create_app({"MODELS_DIR": args.models_dir, "RATE_LIMIT_PREDICT": "100000 per minute"})
        prepare(app)
        client = app.test_client()
        reconstruct = http_times(lambda: client.post("/api/v1/autoencoder/reconstruct",
                                                     data={"image": (io.BytesIO(astronaut), "a.png")}), args.repeats)
        sample = http_times(lambda: client.post("/api/v1/gan/sample", json={"n": 1, "seed": 3}), args.repeats)
        print(f"\nserver (Flask test client, in process): reconstruct one 512x512 photo p50 {p50(reconstruct):.1f} ms; "
              f"gan/sample n=1 p50 {p50(sample):.1f} ms")
        with live_server(app) as base, chromium() as browser:
            context = browser.new_context()
            outside = guard_loopback(context)
            page = context.new_page()
            page.goto(f"{base}/learn/gans?quick=1")
            page.wait_for_function("() => window.tf && tf.wasm")
            result = page.evaluate(BROWSER_JS, {"repeats": args.repeats})
            assert not outside, outside
        print(f"browser (Chromium, TF.js {result['backend']}): one digit p50 {p50(result['times']):.2f} ms, "
              f"p95 {sorted(result['times'])[int(0.95 * len(result['times'])) - 1]:.2f} ms over {len(result['times'])} draws "
              f"(server call in process, no network / browser = {p50(sample) / p50(result['times']):.2f}x)")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
