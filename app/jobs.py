"""Training jobs: labelled uploads → ``riim train`` → ``riim export`` → held-out before/after → promote.

The web process never trains. ``POST /api/v1/jobs`` writes the project's labelled uploads as an image
folder in ``<instance>/jobs/<id>/`` (``data/<class>/`` for training, ``holdout/<class>/`` for the fixed
held-out set, never trained on) and starts this module as a *driver* process in its own process group::

    python -c "<DRIVER>" <instance>/jobs/<id>      (DRIVER: import this module, run Driver(folder))

The driver runs the real CLI as children (same group): ``riim train --progress-file … --no-promote``, then
``riim export`` (TF.js for the browser), then evaluates the new version and its parent with ONNX Runtime on
the same held-out images, stores the delta per metric and per class in the job row and the new card
(``metrics.heldout``), and promotes when the model had no version yet, or when it is better and
auto-promotion is on. Every state change is a conditional UPDATE (``WHERE state IN (queued, running)``), so
a cancelled job is never turned back into a success.

Cancel kills the process group (SIGTERM, then SIGKILL). Publishing and amending a version are atomic in
the registry, so a killed job leaves either no new version or a complete one (never promoted). A job whose
driver is gone (crash, ``kill -9``, machine restart) is marked failed by :func:`refresh`, which runs at
start-up and whenever jobs are read. State lives in SQLite, so a web restart loses nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, create_engine, inspect, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import labelling, storage
from app.auth import admin_required, current_user
from app.db import db
from app.errors import ApiError
from app.inference import LoadedModel, store
from models.preprocess import load_image, preprocess_batch
from models.registry import Registry, RegistryError

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")
ACTIVE = ("queued", "running")
STATES = (*ACTIVE, "succeeded", "failed", "cancelled")
KILL_GRACE_SECONDS = 5.0
LOG_TAIL = 20_000  # characters of the log returned by the API
DRIVER = "import sys; from pathlib import Path; from app.jobs import Driver; Driver(Path(sys.argv[1])).run()"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Job(db.Model):
    """One training run of a project."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    stage: Mapped[str | None] = mapped_column(String(16))  # train, export, evaluate
    user: Mapped[str] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    pid: Mapped[int | None] = mapped_column(Integer)  # the driver; also its process group id
    directory: Mapped[str] = mapped_column(String(512))
    options: Mapped[dict] = mapped_column(JSON)  # training config, auto_promote, export, images per class
    parent_version: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[str | None] = mapped_column(String(16))
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict | None] = mapped_column(JSON)  # held-out evaluation: parent, new, delta
    error: Mapped[str | None] = mapped_column(Text)

    def as_json(self) -> dict:
        stamp = lambda value: value.isoformat() if value else None  # noqa: E731
        return {"id": self.id, "project": self.project, "state": self.state, "stage": self.stage, "user": self.user,
                "created": stamp(self.created), "started": stamp(self.started), "finished": stamp(self.finished),
                "options": self.options, "parent_version": self.parent_version, "version": self.version,
                "promoted": self.promoted, "result": self.result, "error": self.error,
                "progress": read_json(Path(self.directory) / "progress.json")}


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# --- processes ---------------------------------------------------------------------------------------

def alive(job: Job) -> bool:
    """Whether the job's driver still runs (not a zombie, and the pid is still this job's driver)."""
    if not job.pid:
        return False
    try:
        state = Path(f"/proc/{job.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{job.pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X") and job.directory.encode() in command


def kill_group(pid: int, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the process group ``pid``, then SIGKILL what is left after ``grace`` seconds (in a thread)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def finish():
        time.sleep(grace)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    threading.Thread(target=finish, daemon=True).start()


def _end(job_id: int, state: str, **fields) -> bool:
    """Move an active job to a final ``state`` (committed); False if it had already ended."""
    done = db.session.execute(update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE))
                              .values(state=state, finished=_now(), **fields)).rowcount
    db.session.commit()
    return bool(done)


def refresh(job: Job) -> Job:
    """Mark ``job`` failed if it is active but its driver is gone; kill what is left of its group."""
    if job.state in ACTIVE and not alive(job):
        if job.pid:
            try:
                os.killpg(job.pid, signal.SIGKILL)  # children of a killed driver must not publish later
            except (ProcessLookupError, PermissionError):
                pass
        db.session.refresh(job)
        if job.state in ACTIVE:
            _end(job.id, "failed", error="the job process is gone (crashed, killed or the machine restarted)")
        db.session.refresh(job)
    return job


def active_jobs() -> list[Job]:
    jobs = list(db.session.scalars(select(Job).where(Job.state.in_(ACTIVE))))
    return [job for job in (refresh(job) for job in jobs) if job.state in ACTIVE]


# --- starting a job ----------------------------------------------------------------------------------

def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_folders(project: str, directory: Path, min_per_class: int) -> dict:
    """Write ``data/<class>/`` (training) and ``holdout/<class>/`` from the current labels; answers the
    image counts. 409 ``not_enough_labels`` when fewer than 2 classes have ``min_per_class`` images."""
    counts: dict[str, dict[str, int]] = {}
    for upload, row in labelling.labelled_images(project):
        counts.setdefault(row.label, {"train": 0, "holdout": 0})["holdout" if row.holdout else "train"] += 1
    ready = [label for label, count in counts.items() if count["train"] >= min_per_class]
    if len(ready) < 2:
        raise ApiError(409, "not_enough_labels", minimum=min_per_class,
                       counts=", ".join(f"{label} {c['train']}" for label, c in sorted(counts.items())) or "-")
    for upload, row in labelling.labelled_images(project):
        if row.label in ready:
            split = "holdout" if row.holdout else "data"
            _link(storage.path_for(upload.sha256, upload.extension),
                  directory / split / row.label / f"{upload.sha256}.{upload.extension}")
    return {label: counts[label] for label in sorted(ready)}


def _options() -> dict:
    """The request's job options merged over the app's defaults, validated."""
    from training import config as training_config  # dataclasses + yaml, no TensorFlow

    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "missing_field", field="project")
    train = {**current_app.config["JOBS_TRAIN_CONFIG"]}
    for key, value in (data.get("config") or {}).items() if isinstance(data.get("config"), dict) else []:
        train[key] = {**train.get(key, {}), **value} if isinstance(value, dict) and isinstance(train.get(key), dict) \
            else value
    try:
        settings = training_config.from_dict(train)
    except training_config.ConfigError as error:
        raise ApiError(400, "bad_config", problems="; ".join(error.problems)) from None
    auto = data.get("auto_promote", current_app.config["JOBS_AUTO_PROMOTE"])
    if not isinstance(auto, bool):
        raise ApiError(400, "bad_param", name="auto_promote", value=str(auto)[:80])
    return {"config": train, "min_per_class": settings.data.min_per_class, "auto_promote": auto,
            "export": current_app.config["JOBS_EXPORT"], "export_repeats": current_app.config["JOBS_EXPORT_REPEATS"]}


def start(project: str) -> Job:
    """Create the job's folder and row and start its driver process (its own process group)."""
    labelling.get_project(project)
    if len(active_jobs()) >= current_app.config["JOBS_MAX_RUNNING"]:
        raise ApiError(409, "job_running")
    options = _options()
    registry = store().registry
    parent = registry.current(project) if project in registry.models() else None
    job = Job(project=project, state="queued", user=current_user().username, created=_now(), directory="",
              options=options, parent_version=parent)
    db.session.add(job)
    db.session.commit()
    directory = Path(current_app.instance_path) / "jobs" / str(job.id)
    try:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        options["images"] = write_folders(project, directory, options["min_per_class"])
    except ApiError:
        db.session.delete(job)
        db.session.commit()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    storage.write_atomically(directory / "job.json", json.dumps({
        "id": job.id, "project": project, "parent_version": parent, "database": current_app.config[
            "SQLALCHEMY_DATABASE_URI"], "models_dir": str(registry.root), **options}).encode())
    job.directory, job.options = str(directory), options
    db.session.commit()
    with open(directory / "log.txt", "ab") as log:
        process = subprocess.Popen([sys.executable, "-c", DRIVER, str(directory)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                   cwd=Path(__file__).resolve().parent.parent)
    threading.Thread(target=process.wait, daemon=True).start()  # reap it: no zombie
    db.session.execute(update(Job).where(Job.id == job.id).values(pid=process.pid))
    db.session.commit()
    db.session.refresh(job)
    return job


def cancel(job: Job) -> Job:
    if job.state not in ACTIVE:
        raise ApiError(409, "job_finished", id=job.id, state=job.state)
    _end(job.id, "cancelled", error="cancelled by " + current_user().username)
    if job.pid:
        kill_group(job.pid)
    db.session.refresh(job)
    return job


# --- routes ------------------------------------------------------------------------------------------

def get_or_404(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None:
        raise ApiError(404, "unknown_job", id=job_id)
    return refresh(job)


@bp.post("")
@admin_required
def create():
    """``{"project", "auto_promote"?, "config"?: {training config overrides}}`` → 202 and the job."""
    data = request.get_json(silent=True)
    project = data.get("project") if isinstance(data, dict) else None
    if not isinstance(project, str):
        raise ApiError(400, "missing_field", field="project")
    return jsonify(start(project).as_json()), 202


@bp.get("")
@admin_required
def list_jobs():
    query = select(Job).order_by(Job.id.desc()).limit(50)
    if "project" in request.args:
        query = query.where(Job.project == request.args["project"])
    return jsonify(jobs=[refresh(job).as_json() for job in db.session.scalars(query)])


@bp.get("/<int:job_id>")
@admin_required
def show(job_id):
    """The job with its live progress (stage, epoch, loss, accuracy, ETA) — poll this."""
    return jsonify(get_or_404(job_id).as_json())


@bp.get("/<int:job_id>/log")
@admin_required
def log(job_id):
    path = Path(get_or_404(job_id).directory) / "log.txt"
    text = path.read_text(errors="replace")[-LOG_TAIL:] if path.is_file() else ""
    return current_app.response_class(text, mimetype="text/plain")


@bp.post("/<int:job_id>/cancel")
@admin_required
def cancel_job(job_id):
    return jsonify(cancel(get_or_404(job_id)).as_json())


def init_app(app: Flask) -> None:
    for key, value in {"JOBS_MAX_RUNNING": 1, "JOBS_AUTO_PROMOTE": False, "JOBS_EXPORT": True,
                       "JOBS_EXPORT_REPEATS": 5, "JOBS_TRAIN_CONFIG": {}}.items():
        app.config.setdefault(key, value)
    app.register_blueprint(bp)
    with app.app_context():
        if inspect(db.engine).has_table(Job.__tablename__):
            for job in active_jobs():  # orphaned jobs of a previous run are marked failed here
                app.logger.info("job %s still running (pid %s)", job.id, job.pid)


# --- the driver process ------------------------------------------------------------------------------

def classification_metrics(labels: list[str], truth: list[str], predicted: list[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support over ``labels``."""
    per_class = {}
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted))
        support, chosen = truth.count(label), predicted.count(label)
        precision = tp / chosen if chosen else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    present = [label for label in labels if per_class[label]["support"]]
    return {"images": len(truth),
            "accuracy": float(np.mean([t == p for t, p in zip(truth, predicted)])) if truth else 0.0,
            "macro_f1": float(np.mean([per_class[label]["f1"] for label in present])) if present else 0.0,
            "per_class": per_class}


def evaluate(registry: Registry, name: str, version: str, holdout: Path) -> tuple[dict, list[str]]:
    """Metrics of ``name:version`` (ONNX Runtime, argmax over its labels) on the ``holdout`` folder."""
    model = LoadedModel.load(registry, name, version)
    paths = sorted(p for p in holdout.glob("*/*") if p.is_file()) if holdout.is_dir() else []
    truth = [p.parent.name for p in paths]
    predicted = []
    for start in range(0, len(paths), 32):
        batch = preprocess_batch([load_image(p.read_bytes()) for p in paths[start:start + 32]], model.card["input"])
        probabilities = model.run(batch)[model.card["outputs"]["probabilities"]]
        predicted += [model.card["labels"][i] for i in probabilities.argmax(1)]
    labels = sorted(set(truth) | set(model.card["labels"]))
    return classification_metrics(labels, truth, predicted), [p.name for p in paths]


def before_after(registry: Registry, name: str, parent: str | None, version: str, holdout: Path) -> dict:
    """The held-out evaluation of ``version`` next to ``parent`` on the same images, with deltas."""
    new, images = evaluate(registry, name, version, holdout)
    result = {"images": images, "new": {"version": version, **new}, "parent": None, "delta": None}
    if parent:
        old, _ = evaluate(registry, name, parent, holdout)
        result["parent"] = {"version": parent, **old}
        result["delta"] = {
            "accuracy": new["accuracy"] - old["accuracy"], "macro_f1": new["macro_f1"] - old["macro_f1"],
            "per_class": {label: {metric: new["per_class"][label][metric]
                                  - old["per_class"].get(label, {}).get(metric, 0.0)
                                  for metric in ("precision", "recall", "f1")} for label in new["per_class"]}}
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
        return subprocess.call([sys.executable, "-m", "app.cli", *args], stdin=subprocess.DEVNULL)

    def fail(self, error: str) -> None:
        self.set(state="failed", finished=_now(), error=error)
        sys.exit(1)

    def run(self) -> None:
        spec, name = self.spec, self.spec["project"]
        self.set(state="running", started=_now(), stage="train")
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
        self.set(state="succeeded", finished=_now(), promoted=promote)

