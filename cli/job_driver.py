"""The job driver: ``python -m cli.job_driver <instance>/jobs/<id>``, started by the web app (:mod:`app.jobs`)
in its own process group. A project's retraining spans layers — train (training/), export (export/),
held-out before/after with the served ONNX model (app/) — so it lives outside the serving package; a job of
another kind (:mod:`app.job_kinds`) runs its planned `riim` stages in order (:class:`KindDriver`).
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from app.inference import LoadedModel
from app.job_kinds import RESULT_FILE
from app.jobs import ACTIVE, STAGE_FILE, Job, now, stage_view
from models import atomic, metrics
from models.preprocess import load_image, preprocess_batch
from models.registry import Registry


def predictions(registry: Registry, name: str, version: str, paths: list[Path]) -> list[str]:
    """Labels ``name:version`` gives the images at ``paths`` (ONNX Runtime, argmax over its labels)."""
    model = LoadedModel.load(registry, name, version)
    predicted = []
    for start in range(0, len(paths), 32):
        batch = preprocess_batch([load_image(p.read_bytes()) for p in paths[start:start + 32]], model.card["input"])
        probabilities = model.run(batch)[model.card["outputs"]["probabilities"]]
        predicted += [model.card["labels"][i] for i in probabilities.argmax(1)]
    return predicted


def with_interval(summary: dict) -> dict:
    """``summary`` plus the 95 % Wilson interval of its accuracy (``accuracy_interval``: [low, high])."""
    right = round(summary["accuracy"] * summary["images"])
    low, high = metrics.wilson_interval(right, summary["images"])
    return {**summary, "correct": right, "accuracy_interval": [round(low, 4), round(high, 4)]}


def before_after(registry: Registry, name: str, parent: str | None, version: str, holdout: Path,
                 min_per_class: int = 0, excluded: list | None = None) -> dict:
    """The held-out evaluation of ``version`` next to ``parent`` on the same images, with deltas. Both are
    summarised (:func:`models.metrics.summary`) over one label list — the held-out classes and both
    versions' labels — so their figures are comparable; each accuracy carries its 95 % Wilson interval.

    ``meaningful`` is False (with ``too_small``: the classes below ``min_per_class`` held-out images)
    when the held-out set is too small to tell the versions apart; ``excluded`` names the classes left
    out of training and why. ``overlap``: the two intervals overlap (the difference may be chance)."""
    paths = sorted(p for p in holdout.glob("*/*") if p.is_file()) if holdout.is_dir() else []
    truth, names = [p.parent.name for p in paths], [p.name for p in paths]
    versions = {"new": version, **({"parent": parent} if parent else {})}
    predicted = {role: predictions(registry, name, v, paths) for role, v in versions.items()}
    labels = sorted(set(truth).union(*(registry.card(name, v)["labels"] for v in versions.values())))
    summaries = {role: with_interval(metrics.summary(truth, predicted[role], labels, names)) for role in versions}
    per_class = {label: truth.count(label) for label in registry.card(name, version)["labels"]}
    too_small = {label: count for label, count in per_class.items() if count < min_per_class}
    result = {"images": names, "parent": None, "delta": None, "heldout_per_class": per_class,
              "min_heldout_per_class": min_per_class, "meaningful": bool(paths) and not too_small,
              "too_small": too_small, "excluded": excluded or [], "overlap": None,
              **{role: {"version": versions[role], **summaries[role]} for role in versions}}
    if parent:
        new, old = summaries["new"], summaries["parent"]
        result["delta"] = {
            "accuracy": round(new["accuracy"] - old["accuracy"], 4),
            "macro_f1": round(new["macro_f1"] - old["macro_f1"], 4),
            "per_class": {label: {key: round(new["per_class"][label][key] - old["per_class"][label][key], 4)
                                  for key in ("precision", "recall", "f1")} for label in labels}}
        (new_low, new_high), (old_low, old_high) = new["accuracy_interval"], old["accuracy_interval"]
        result["overlap"] = new_low <= old_high and old_low <= new_high
    return result


def better(result: dict) -> bool:
    """Whether the new version beats its parent on a held-out set big enough to tell (accuracy, then
    macro-F1); never on a comparison that is not meaningful."""
    new, old = result["new"], result["parent"]
    return (bool(new["images"]) and result.get("meaningful", True)
            and (new["accuracy"], new["macro_f1"]) > (old["accuracy"], old["macro_f1"]))


# What a job exports: what the class uses (int8 serving when configured, TF.js float16 for the browser);
# `riim export` adds the other formats later when asked.
EXPORT_FORMATS = ("onnx_int8", "tfjs")
# Lines a child prints as it goes, counted as the steps of its stage (export: held-out images + each format
# + parity; calibration: graph, network run, fit, thresholds).
STEP_LINES = {"export": (re.compile(r": (preparing|exporting|parity on) "), 2 + len(EXPORT_FORMATS)),
              "calibrate": (re.compile(r"^(describing|running the network|fitting on|OOD AUROC)"), 4)}
HISTORY_JOBS = 5  # the expected duration of a stage: the median over the last successful jobs


class Driver:
    """Runs one job (in its own process group) and records every step in the job's row."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.spec = json.loads((directory / "job.json").read_text())
        self.engine = create_engine(self.spec["database"])
        self.registry = Registry(self.spec["models_dir"])
        self.stages = {"expected": self.expected_seconds(), "stages": {}}

    def set(self, **fields) -> None:
        """Update the row while the job is active; exit quietly if it was cancelled or failed meanwhile."""
        with Session(self.engine) as session:
            done = session.execute(update(Job).where(Job.id == self.spec["id"], Job.state.in_(ACTIVE))
                                   .values(**fields)).rowcount
            session.commit()
        if not done:
            sys.exit(0)

    def expected_seconds(self) -> dict[str, float]:
        """How long each stage took in the last successful jobs (median): the ETA of stages not yet measured."""
        with Session(self.engine) as session:
            results = session.scalars(select(Job.result).where(Job.state == "succeeded", Job.id != self.spec["id"])
                                      .order_by(Job.id.desc()).limit(HISTORY_JOBS)).all()
        seen: dict[str, list[float]] = {}
        for result in results:
            for name, seconds in ((result or {}).get("seconds") or {}).items():
                seen.setdefault(name, []).append(seconds)
        return {name: round(statistics.median(values), 1) for name, values in seen.items()}

    def write_stages(self) -> None:
        atomic.write_json(self.dir / STAGE_FILE, self.stages)

    def begin(self, name: str) -> None:
        self.set(stage=name)
        self.stages["stages"][name] = {"started": time.time(), "step": 0, "steps": STEP_LINES.get(name, (None, None))[1]}
        self.write_stages()

    def end(self, name: str) -> None:
        stage = self.stages["stages"][name]
        stage.update(finished=time.time(), seconds=round(time.time() - stage["started"], 1))
        self.write_stages()

    def riim(self, *args: str, stage: str | None = None) -> int:
        """Run ``riim ARGS`` as a child, its output into the job's log; lines that mark a step of ``stage``
        advance that stage's step count (:data:`STEP_LINES`)."""
        print("$ riim " + " ".join(args), flush=True)
        child = subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        pattern = STEP_LINES.get(stage, (None,))[0]
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if pattern is not None and pattern.search(line):
                entry = self.stages["stages"][stage]
                entry["step"] = min(entry["step"] + 1, entry["steps"])
                self.write_stages()
        return child.wait()

    def fail(self, error: str) -> None:
        self.set(state="failed", finished=now(), error=error)
        sys.exit(1)

    def run(self) -> None:
        spec, name = self.spec, self.spec["project"]
        self.write_stages()
        self.set(state="running", started=now(), stage="train")
        (self.dir / "config.json").write_text(json.dumps(spec["config"]))
        code = self.riim("train", "--data", str(self.dir / "data"), "--name", name, "--config",
                         str(self.dir / "config.json"), "--models-dir", spec["models_dir"], "--work-dir",
                         str(self.dir / "work"), "--progress-file", str(self.dir / "progress.json"), "--no-promote",
                         "--log-json")
        progress = atomic.read_json(self.dir / "progress.json") or {}
        if code != 0 or progress.get("state") != "done":
            self.fail(progress.get("error") or f"riim train ended with exit code {code}")
        version = progress["version"]
        self.set(version=version)
        if spec["export"]:
            self.begin("export")
            code = self.riim("export", f"{name}:{version}", "--models-dir", spec["models_dir"], "--data",
                             str(self.dir / "data"), "--repeats", str(spec["export_repeats"]),
                             "--formats", ",".join(EXPORT_FORMATS), stage="export")
            if code != 0:
                self.fail(f"riim export ended with exit code {code}; {name}:{version} stays unpromoted")
            self.end("export")
        calibration = None
        if spec.get("calibrate", True):
            self.begin("calibrate")
            code = self.riim("calibrate", f"{name}:{version}", "--data", str(self.dir / "data"), "--models-dir",
                             spec["models_dir"], stage="calibrate")
            self.end("calibrate")
            anomaly = self.registry.card(name, version).get("anomaly")
            calibration = {"calibrated": anomaly is not None,
                           **({"score": anomaly["ood"]["score"], "auroc": anomaly["ood"]["auroc"].get(
                               anomaly["ood"]["score"]), "held_out": anomaly["ood"]["held_out"]} if anomaly else
                              {"error": f"riim calibrate ended with exit code {code} (see the log)"})}
        self.begin("evaluate")
        result = before_after(self.registry, name, spec["parent_version"], version, self.dir / "holdout",
                              spec.get("min_heldout_per_class", 0), spec.get("excluded"))
        result["calibration"] = calibration
        with self.registry.amend(name, version) as draft:
            draft.card["metrics"] = {**draft.card["metrics"], "heldout": {
                key: result[key] for key in ("new", "parent", "delta", "meaningful")} | {"images": len(result["images"])}}
        self.end("evaluate")
        view = stage_view(self.dir, spec, "succeeded")
        result["seconds"] = {row["name"]: row["seconds"] for row in view["stages"] if row["seconds"] is not None}
        promote = spec["parent_version"] is None or (spec["auto_promote"] and better(result))
        self.set(stage="promote" if promote else "done", result=result)
        if promote:
            self.registry.promote(name, version)
        self.set(state="succeeded", finished=now(), promoted=promote, stage="done")


class KindDriver(Driver):
    """Runs the planned stages of a registered kind's job: each a `riim` command; the first failure ends it."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.spec = json.loads((directory / "job.json").read_text())
        self.engine = create_engine(self.spec["database"])

    def run(self) -> None:
        self.set(state="running", started=now())
        progress = {}
        for stage in self.spec["stages"]:
            self.set(stage=stage["name"][:16])
            path, started = Path(stage["progress"]), time.monotonic()
            atomic.write_json(path, {"state": "running", "stages": []})  # the command's own Progress replaces it
            code = self.riim(*stage["argv"])
            progress = atomic.read_json(path) or {}
            if progress.get("state") not in ("done", "failed"):  # a command that reports no progress of its own
                progress.update(state="done" if code == 0 else "failed",
                                elapsed_seconds=round(time.monotonic() - started, 1))
                atomic.write_json(path, progress)
            if code != 0:
                self.fail(progress.get("error") or f"{stage['name']}: riim {stage['argv'][0]} ended with exit code "
                          f"{code} (see the log)")
        result = atomic.read_json(self.dir / RESULT_FILE)
        self.set(state="succeeded", finished=now(), stage="done", result=result, version=progress.get("version"))


DIE_WITH = "RIIM_DRIVER_DIES_WITH"  # set by `riim worker` to its pid: the driver ends when that process does
PR_SET_PDEATHSIG = 1


def die_with_worker() -> None:
    """SIGTERM this driver when the worker named by :data:`DIE_WITH` ends (Linux ``prctl``), now if it already has."""
    if not os.environ.get(DIE_WITH):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(os.environ[DIE_WITH]):
        os.kill(os.getpid(), signal.SIGTERM)


def fail_on_sigterm(driver: Driver) -> None:
    """SIGTERM (cancel, or the worker that started this driver ended): the job, if still active, fails; then
    the whole process group goes, so no child publishes later."""
    def stopped(signum, frame):
        with Session(driver.engine) as session:
            session.execute(update(Job).where(Job.id == driver.spec["id"], Job.state.in_(ACTIVE)).values(
                state="failed", finished=now(), error="stopped: the worker running the job ended, or it was killed"))
            session.commit()
        os.killpg(0, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stopped)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    kind = json.loads((folder / "job.json").read_text()).get("kind")
    job_driver = (KindDriver if kind else Driver)(folder)
    fail_on_sigterm(job_driver)
    die_with_worker()
    job_driver.run()
