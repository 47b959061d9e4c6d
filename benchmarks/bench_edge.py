"""Benchmark: the browser (TF.js wasm, edge mode) vs the server round trip, in one headless Chromium run.

The real app is served on 127.0.0.1; the Analyze page's own modules (edge.js, preprocess.js) classify the
real photos in the page, then the page POSTs the same photos to /api/v1/predict, in one run. It reports per
image p50/p95 of the full edge pipeline (decode → crop/resize → normalise → model → CAM) and of the model
call alone, canvas → answer (everything after the image is decoded: crop/resize, normalise, model,
decision), the server round trip, model first load (download + IndexedDB save) and cached load, the
user's view of a cold page (new browser profile: page, model download, compile) and of a repeat visit
(a reload once the service worker has installed: its cache and IndexedDB) until the first browser answer
to a photo chosen as soon as the page can take it, and whether the float16 / uint8 TF.js variants change
any answer. Usage::

    .venv/bin/python benchmarks/bench_edge.py [--repeats 3] [--models-dir DIR]

Without ``--models-dir`` it builds and exports (`riim export`) the default model in a temporary registry.
"""
from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the browser helpers live in tests/

from app import create_app, prepare  # noqa: E402
from cli import pipeline  # noqa: E402
from models.registry import Registry  # noqa: E402
from tests.browser_support import LOOPBACK, chromium, guard_loopback, live_server  # noqa: E402
from training import default_model, real_photos  # noqa: E402

# Runs in the Analyze page: classify every photo `repeats` times in the browser, then on the server.
MEASURE_JS = """async ({photos, repeats, format}) => {
  const edgeModule = await import('/static/js/edge.js');
  const blobs = photos.map(p => new Blob([Uint8Array.from(atob(p.png), c => c.charCodeAt(0))], {type: 'image/png'}));
  const load = edgeModule.loadWorkerModel || edgeModule.loadEdgeModel;  // the page's Web Worker, when it has one
  const edge = await load(document.getElementById('main').dataset.model, format);
  const edgeRows = [];
  for (let r = 0; r < repeats; r++) {
    for (let i = 0; i < blobs.length; i++) {
      const t0 = performance.now();
      const local = await edgeModule.classify(edge, blobs[i]);
      const wall = performance.now() - t0;
      const t1 = performance.now();  // the CAM, computed when the page shows it (inside classify before)
      if (edgeModule.explain) await edgeModule.explain(edge, local);
      edgeRows.push({...local, wall, camMs: edgeModule.explain ? performance.now() - t1 : local.timings.cam_ms});
    }
  }
  const serverRows = [];  // after the edge passes: ONNX Runtime's spinning threads must not overlap them
  for (let r = 0; r < repeats; r++) {
    for (let i = 0; i < blobs.length; i++) {
      const body = new FormData();
      body.append('image', blobs[i], photos[i].name + '.png');
      const t0 = performance.now();
      const answer = await (await fetch('/api/v1/predict?store=0', {method: 'POST', body})).json();
      serverRows.push({roundTrip: performance.now() - t0, result: answer.results[0]});
    }
  }
  const rows = edgeRows.map((local, k) => ({name: photos[k % photos.length].name, edge: local.timings,
    canvas: local.wall - local.timings.decode_ms, cam: local.camMs,
    edgeLabel: local.label, edgeProbabilities: local.probabilities, roundTrip: serverRows[k].roundTrip,
    serverLabel: serverRows[k].result.label, serverProbabilities: serverRows[k].result.probabilities}));
  const wasm = edge.worker ? edge : {simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'), threads: tf.wasm.getThreadsCount()};
  const info = await (await fetch('/api/v1/model-info')).json();
  const serving = info.models.find((model) => model.name === edge.name)?.serving;
  return {format: edge.format, backend: edge.backend, rows, simd: wasm.simd, threads: wasm.threads, serving,
          worker: Boolean(edge.worker), cores: navigator.hardwareConcurrency};
}"""


# Runs in the Analyze page before a photo is chosen: resolves with the page's clock (ms since navigation
# start) when the browser model is ready and when the browser's answer is on the page, and the page thread's
# long tasks (> 50 ms: the page cannot respond) until then.
WATCH_JS = """() => { window.riimBench = new Promise((resolve) => {
  const times = {longest: 0, blocked: 0};
  new PerformanceObserver((list) => list.getEntries().forEach((task) => {
    times.longest = Math.max(times.longest, task.duration);
    times.blocked += task.duration;
  })).observe({type: 'longtask'});
  const check = () => {
    if (times.ready == null && document.querySelector('#edge-status[data-state=ready]')) times.ready = performance.now();
    if (document.querySelector('#edge-result[data-label]')) { times.answer = performance.now(); resolve(times); return true; }
    return false;
  };
  if (!check()) new MutationObserver((_, observer) => { if (check()) observer.disconnect(); })
    .observe(document.body, {attributes: true, subtree: true});
}); }"""


def first_answer(page, url: str, photo, reload: bool = False) -> dict:
    """Open (or reload) the Analyze page, choose PHOTO as soon as the page listens: the page's clock when
    the browser model was ready and when its first answer was shown."""
    if reload:  # a later visit: the service worker has installed (cached the app shell) by then
        page.evaluate("navigator.serviceWorker.ready.then(() => null)")
        page.reload(wait_until="commit")
    else:
        page.goto(url + "/", wait_until="commit")
    page.wait_for_selector("#edge-status[data-state]", state="attached")
    page.evaluate(WATCH_JS)
    page.set_input_files("#image-input", {"name": "photo.png", "mimeType": "image/png", "buffer": photo.png_bytes()})
    times = page.evaluate("window.riimBench")
    times["source"] = page.get_attribute("#edge-status", "data-source")
    return times


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms"


def watch(context, outside: list[str]) -> None:
    """Record (without intercepting) every request of CONTEXT that is not for 127.0.0.1."""
    context.on("request", lambda request: outside.append(request.url)
               if urlsplit(request.url).scheme.startswith(("http", "ws"))
               and urlsplit(request.url).hostname not in LOOPBACK else None)


def agreement(rows: list[dict]) -> tuple[int, int, float]:
    """(same label, images, max |Δp|) between the browser and the server over one pass."""
    same = sum(row["edgeLabel"] == row["serverLabel"] for row in rows)
    worst = max(abs(row["edgeProbabilities"][k] - row["serverProbabilities"][k])
                for row in rows for k in row["serverProbabilities"])
    return same, len(rows), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="passes over the photos for the timings")
    parser.add_argument("--visits", type=int, default=3, help="cold + repeat visits (a new profile each)")
    parser.add_argument("--models-dir", help="registry holding the default model (else a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        registry = Registry(args.models_dir or Path(scratch) / "registry")
        card = registry.card(default_model.NAME, pipeline.ensure_default(registry, calibrate=False))
        photos = real_photos.cat_dog_photos() + real_photos.ood_photos()
        payload = [{"name": p.name, "png": base64.b64encode(p.png_bytes()).decode("ascii")} for p in photos]
        app = create_app({"MODELS_DIR": str(registry.root), "RATELIMIT_ENABLED": False, "STORE_UPLOADS": False,
                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(scratch) / 'riim.sqlite3'}"})
        prepare(app)
        outside: list[str] = []
        with live_server(app) as url, chromium() as browser:
            visits = {"cold": [], "repeat": []}
            for run in range(args.visits):  # a new profile each time: nothing cached
                context = browser.new_context()
                watch(context, outside)  # no routing here: it would put Python on every request's path
                page = context.new_page()
                visits["cold"].append(first_answer(page, url, photos[0]))
                visits["repeat"].append(first_answer(page, url, photos[0], reload=True))
                print(f"visit {run + 1}: cold {visits['cold'][-1]}, repeat {visits['repeat'][-1]}", flush=True)
                context.close()
            context = browser.new_context()
            outside += guard_loopback(context)
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#edge-status[data-state=ready]", timeout=120_000)
            first_load = float(page.get_attribute("#edge-status", "data-load-ms"))
            first_source = page.get_attribute("#edge-status", "data-source")
            page.reload()
            page.wait_for_selector("#edge-status[data-state=ready]", timeout=120_000)
            cached_load = float(page.get_attribute("#edge-status", "data-load-ms"))
            cached_source = page.get_attribute("#edge-status", "data-source")
            fp16 = page.evaluate(MEASURE_JS, {"photos": payload, "repeats": args.repeats, "format": "tfjs"})
            uint8 = page.evaluate(MEASURE_JS, {"photos": payload, "repeats": 1, "format": "tfjs_uint8"})
            context.close()
        if outside:
            raise SystemExit(f"requests left 127.0.0.1: {outside}")

    size = card["input"]["size"]
    print(f"default model {card['name']}:{card['version']}, input {size}x{size} (card), backend {fp16['backend']} "
          f"(SIMD {fp16['simd']}, {fp16['threads']} thread(s), {fp16['cores']} cores, "
          f"{'in a Web Worker' if fp16['worker'] else 'on the page thread'}), "
          f"{len(photos)} real photos x {args.repeats} passes, Chromium headless")
    print(f"model load: first visit {first_load:.0f} ms ({first_source}, "
          f"{card['files']['tfjs']['bytes'] / 2**20:.1f} MB float16), next visit {cached_load:.0f} ms ({cached_source})")
    rows = fp16["rows"]
    for kind, label in (("cold", "cold page (new profile)"), ("repeat", "repeat visit (reload)")):
        ready = statistics.median(v["ready"] for v in visits[kind])
        answer = statistics.median(v["answer"] for v in visits[kind])
        print(f"{label:24s} browser model ready {ready:6.0f} ms, first answer on the page {answer:6.0f} ms "
              f"(median of {len(visits[kind])}, from navigation start; model from {visits[kind][0]['source']})")
        longest = max(v["longest"] for v in visits[kind])
        blocked = statistics.median(v["blocked"] for v in visits[kind])
        print(f"{'':24s} page thread blocked meanwhile: longest task {longest:4.0f} ms, {blocked:4.0f} ms in all (median)")
    print(f"edge canvas -> answer {percentiles([r['canvas'] for r in rows])}   (after decode: resize+model+decision)")
    cam = "CAM apart" if fp16["worker"] else "CAM included"
    print(f"edge full pipeline   {percentiles([r['edge']['total_ms'] for r in rows])}   (decode+resize+model, {cam})")
    print(f"edge CAM             {percentiles([r['cam'] for r in rows])}")
    print(f"edge model call      {percentiles([r['edge']['inference_ms'] for r in rows])}   (execute + dataSync)")
    print(f"edge preprocess      {percentiles([r['edge']['preprocess_ms'] for r in rows])}")
    print(f"server round trip    {percentiles([r['roundTrip'] for r in rows])}   (POST /api/v1/predict, loopback)")
    served = (fp16["serving"] or {}).get("format", "?")
    for name, run in (("float16", fp16), ("uint8", uint8)):
        same, total, worst = agreement(run["rows"][:len(photos)])
        size_mb = card["files"][run["format"]]["bytes"] / 2**20
        print(f"{name:8s} ({size_mb:.1f} MB): same label as the server ({served}) on {same}/{total} photos, "
              f"max |dp| {worst:.4f}")
    changed = [(a["name"], a["edgeLabel"], b["edgeLabel"]) for a, b in zip(fp16["rows"], uint8["rows"])
               if a["edgeLabel"] != b["edgeLabel"]]
    print(f"uint8 vs float16: {len(changed)} label changes {changed}")


if __name__ == "__main__":
    main()
