"""The training job driver: ``python -m cli.job_driver <instance>/jobs/<id>``, started by the web app
(:mod:`app.jobs`) in its own process group. It spans layers — train (training/), export (export/),
held-out before/after with the served ONNX model (app/) — so it lives outside the serving package.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session

from app.inference import LoadedModel
from app.jobs import ACTIVE, Job, now, read_json
from models import metrics
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


def before_after(registry: Registry, name: str, parent: str | None, version: str, holdout: Path) -> dict:
    """The held-out evaluation of ``version`` next to ``parent`` on the same images, with deltas. Both are
    summarised (:func:`models.metrics.summary`) over one label list — the held-out classes and both
    versions' labels — so their figures are comparable."""
    paths = sorted(p for p in holdout.glob("*/*") if p.is_file()) if holdout.is_dir() else []
    truth, names = [p.parent.name for p in paths], [p.name for p in paths]
    versions = {"new": version, **({"parent": parent} if parent else {})}
    predicted = {role: predictions(registry, name, v, paths) for role, v in versions.items()}
    labels = sorted(set(truth).union(*(registry.card(name, v)["labels"] for v in versions.values())))
    summaries = {role: metrics.summary(truth, predicted[role], labels, names) for role in versions}
    result = {"images": names, "parent": None, "delta": None,
              **{role: {"version": versions[role], **summaries[role]} for role in versions}}
    if parent:
        new, old = summaries["new"], summaries["parent"]
        result["delta"] = {
            "accuracy": round(new["accuracy"] - old["accuracy"], 4),
            "macro_f1": round(new["macro_f1"] - old["macro_f1"], 4),
            "per_class": {label: {key: round(new["per_class"][label][key] - old["per_class"][label][key], 4)
                                  for key in ("precision", "recall", "f1")} for label in labels}}
    return result


def better(result: dict) -> bool:
    """Whether the new version beats its parent on the held-out set (accuracy, then macro-F1)."""
    new, old = result["new"], result["parent"]
    return bool(new["images"]) and (new["accuracy"], new["macro_f1"]) > (old["accuracy"], old["macro_f1"])


class Driver:
    """Runs one job (in its own process group) and records every step in the job's row."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.spec = json.loads((directory / "job.json").read_text())
        self.engine = create_engine(self.spec["database"])
        self.registry = Registry(self.spec["models_dir"])

    def set(self, **fields) -> None:
        """Update the row while the job is active; exit quietly if it was cancelled or failed meanwhile."""
        with Session(self.engine) as session:
            done = session.execute(update(Job).where(Job.id == self.spec["id"], Job.state.in_(ACTIVE))
                                   .values(**fields)).rowcount
            session.commit()
        if not done:
            sys.exit(0)

    def riim(self, *args: str) -> int:
        print("$ riim " + " ".join(args), flush=True)
        return subprocess.call([sys.executable, "-m", "cli.main", *args], stdin=subprocess.DEVNULL)

    def fail(self, error: str) -> None:
        self.set(state="failed", finished=now(), error=error)
        sys.exit(1)

    def run(self) -> None:
        spec, name = self.spec, self.spec["project"]
        self.set(state="running", started=now(), stage="train")
        (self.dir / "config.json").write_text(json.dumps(spec["config"]))
        code = self.riim("train", "--data", str(self.dir / "data"), "--name", name, "--config",
                         str(self.dir / "config.json"), "--models-dir", spec["models_dir"], "--work-dir",
                         str(self.dir / "work"), "--progress-file", str(self.dir / "progress.json"), "--no-promote",
                         "--log-json")
        progress = read_json(self.dir / "progress.json") or {}
        if code != 0 or progress.get("state") != "done":
            self.fail(progress.get("error") or f"riim train ended with exit code {code}")
        version = progress["version"]
        self.set(version=version, stage="export")
        if spec["export"]:
            code = self.riim("export", f"{name}:{version}", "--models-dir", spec["models_dir"], "--data",
                             str(self.dir / "data"), "--repeats", str(spec["export_repeats"]))
            if code != 0:
                self.fail(f"riim export ended with exit code {code}; {name}:{version} stays unpromoted")
        self.set(stage="evaluate")
        result = before_after(self.registry, name, spec["parent_version"], version, self.dir / "holdout")
        with self.registry.amend(name, version) as draft:
            draft.card["metrics"] = {**draft.card["metrics"], "heldout": {
                key: result[key] for key in ("new", "parent", "delta")} | {"images": len(result["images"])}}
        promote = spec["parent_version"] is None or (spec["auto_promote"] and better(result))
        self.set(stage="promote" if promote else "done", result=result)
        if promote:
            self.registry.promote(name, version)
        self.set(state="succeeded", finished=now(), promoted=promote)


if __name__ == "__main__":
    Driver(Path(sys.argv[1])).run()
