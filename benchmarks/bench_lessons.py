"""Benchmark: how long each lesson's demos take in a real Chromium, against the real served model.

For every lesson slug in ``LESSONS`` (add rows: slug → the kind of each demo, "training" or "answer") it opens
``/learn/<slug>`` on the real app (127.0.0.1) and records, per demo root, the time from ``data-state=loading``
(the framework starts the module) to ``done`` — a MutationObserver in the page stamps each change. Budgets
(issue 14): a demo that answers (no training) within 2 s; a training demo shows progress and finishes within
60 s. Each lesson is opened twice with a fresh instance folder: *cold* (nothing cached on the server, e.g. the
Fashion-MNIST embeddings are computed) and *warm* (second visit). Usage::

    .venv/bin/python benchmarks/bench_lessons.py [--slugs overfitting,cross-validation] [--quick] [--lang es]
        [--models-dir models/store] [--screenshots DIR]

Without ``--models-dir`` it serves ``models/store`` (the default model of `make setup`). Prints the figures as it
goes and a table at the end; exits non-zero when a demo ends in ``error``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the browser helpers live in tests/

from app import create_app, prepare  # noqa: E402
from models.registry import DEFAULT_ROOT  # noqa: E402
from tests.browser_support import chromium, guard_loopback, live_server, page_errors  # noqa: E402

# slug → kind of each demo root in page order (the "see it" demos, then the exercise): "training" demos train
# in the page (budget 60 s with a progress bar), "answer" demos show a computed answer (budget 2 s).
LESSONS = {
    "intro-ai": ("training", "answer"),
    "neural-networks": ("training", "answer"),
    "convolution": ("answer", "answer"),
    "cloud-vs-edge": ("answer", "answer"),
    "ci-cd": ("answer", "answer"),
    "transfer-learning": ("training", "answer", "answer"),
    "data-augmentation": ("answer", "answer"),
    "overfitting": ("training", "answer"),
    "cross-validation": ("training", "answer"),
    "pruning": ("answer", "answer"),
    "quantization": ("answer", "answer"),
    "model-formats": ("answer", "answer"),
    "active-learning": ("answer", "answer"),
    "anomalies-explanations": ("answer", "answer"),
}
BUDGET_S = {"training": 60.0, "answer": 2.0}

# Installed before any page script: stamps every data-state change of a demo or exercise root.
OBSERVE_JS = """
window.__lessonTimes = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    const root = change.target;
    if (change.attributeName !== 'data-state' || !root.dataset) continue;
    window.__lessonTimes.push({name: root.dataset.demo || ('exercise:' + root.dataset.exercise),
      state: root.dataset.state, t: performance.now()});
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-state']});
"""
SETTLED_JS = """() => [...document.querySelectorAll('[data-demo],[data-exercise]')].every(
  (root) => ['done', 'ready', 'error'].includes(root.dataset.state))"""
SUMMARY_JS = """() => ({times: window.__lessonTimes, roots: [...document.querySelectorAll('[data-demo],[data-exercise]')].map(
  (root) => ({name: root.dataset.demo || ('exercise:' + root.dataset.exercise), state: root.dataset.state,
              result: root.dataset.result || null, text: root.dataset.state === 'error' ? root.innerText.slice(0, 300) : ''}))})"""


def durations(summary: dict) -> dict[str, float]:
    """Seconds from a root's ``loading`` to its ``done``/``ready`` (its first settled state)."""
    started, out = {}, {}
    for stamp in summary["times"]:
        if stamp["state"] == "loading":
            started.setdefault(stamp["name"], stamp["t"])
        elif stamp["state"] in ("done", "ready", "error") and stamp["name"] in started and stamp["name"] not in out:
            out[stamp["name"]] = (stamp["t"] - started[stamp["name"]]) / 1000
    return out


def visit(browser, url: str, slug: str, lang: str, quick: bool, screenshot: Path | None) -> dict:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale=lang)
    outside, errors = guard_loopback(context), page_errors(context)
    context.add_init_script(OBSERVE_JS)
    page = context.new_page()
    started = time.perf_counter()
    page.goto(f"{url}/learn/{slug}?lang={lang}{'&quick=1' if quick else ''}")
    page.wait_for_function(SETTLED_JS, timeout=180_000, polling=100)
    wall = time.perf_counter() - started
    summary = page.evaluate(SUMMARY_JS)
    if screenshot:
        screenshot.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot / f"{slug}-{lang}-{'quick' if quick else 'full'}.png"), full_page=True)
    context.close()
    return {"wall": wall, "seconds": durations(summary), "roots": summary["roots"], "outside": outside, "errors": errors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slugs", default=",".join(LESSONS), help="comma-separated lesson slugs (rows of LESSONS)")
    parser.add_argument("--quick", action="store_true", help="open the pages with ?quick=1 (the test settings)")
    parser.add_argument("--lang", default="es", choices=("es", "en"))
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args(argv)
    slugs = [slug for slug in args.slugs.split(",") if slug]
    unknown = sorted(set(slugs) - set(LESSONS))
    if unknown:
        parser.error(f"unknown slugs {unknown}: add them to LESSONS")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; models {args.models_dir}; "
          f"{'quick' if args.quick else 'full'} settings", flush=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log between the figures
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as instance, chromium() as browser:
        os.environ["RIIM_INSTANCE_PATH"] = instance
        app = create_app({"MODELS_DIR": args.models_dir, "RATELIMIT_ENABLED": False})
        prepare(app)
        with live_server(app) as url:
            for slug in slugs:
                for visit_name in ("cold", "warm"):
                    report = visit(browser, url, slug, args.lang, args.quick, args.screenshots if visit_name == "warm" else None)
                    for index, root in enumerate(report["roots"]):
                        kind = LESSONS[slug][index] if index < len(LESSONS[slug]) else "answer"
                        seconds = report["seconds"].get(root["name"], float("nan"))
                        within = seconds <= BUDGET_S[kind]
                        failed |= root["state"] == "error"
                        rows.append((slug, visit_name, root["name"], kind, seconds, within, root["state"]))
                        print(f"{slug:20} {visit_name:4}  {root['name']:28} {kind:8} {seconds:6.2f} s "
                              f"(budget {BUDGET_S[kind]:.0f} s: {'ok' if within else 'OVER'})  {root['state']}"
                              f"  {root['result'] or ''}{root['text']}", flush=True)
                    if report["outside"] or report["errors"]:
                        failed = True
                        print(f"  requests outside 127.0.0.1: {report['outside']}; page errors: {report['errors']}")
                    print(f"{slug:20} {visit_name:4}  page settled in {report['wall']:.2f} s", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} after the run")
    print(json.dumps([{"slug": r[0], "visit": r[1], "demo": r[2], "kind": r[3], "seconds": round(r[4], 2),
                       "within_budget": r[5], "state": r[6]} for r in rows], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
