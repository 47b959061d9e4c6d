"""Training jobs: labelled uploads → ``riim train`` → ``riim export`` → held-out before/after → promote.

The web process never trains. ``POST /api/v1/jobs`` writes the project's labelled uploads as an image
folder in ``<instance>/jobs/<id>/`` (``data/<class>/`` for training, ``holdout/<class>/`` for the fixed
held-out set, never trained on) and starts this module as a *driver* process in its own process group::

    python -m cli.job_driver <instance>/jobs/<id>

The driver (outside the serving package: it spans training, export and serving) runs the real CLI as
children (same group): ``riim train --progress-file … --no-promote``, then
``riim export`` (TF.js for the browser), then evaluates the new version and its parent with ONNX Runtime on
the same held-out images, stores the delta per metric and per class in the job row and the new card
(``metrics.heldout``), and promotes when the model had no version yet, or when it is better and
auto-promotion is on. Every state change is a conditional UPDATE (``WHERE state IN (queued, running)``), so
a cancelled job is never turned back into a success.

Processes. The driver's pid and start time (psutil ``create_time``) are recorded when it starts
(``driver.json`` in the job's folder). Before any signal a process is checked to be this job's: the driver
by pid, start time and command line (it names the job's folder); other processes by the driver's process
group, a command line naming the folder and a start no earlier than the driver's. A pid reused by another
process (after a reboot, or later on a busy machine) has another start time and is never signalled; a job
without a recorded start time has no process that can be proven its own. Publishing and amending a version
are atomic in the registry, so a killed job leaves either no new version or a complete one (never promoted).

Who signals. Cancel (a POST) stops the job's processes (SIGTERM, then SIGKILL). When the driver ends, the
web process that started it (a thread waiting on it) kills what is left of its group, so the children of a
killed driver never publish later; ``riim jobs check`` (run before serving) does the same for jobs of a
previous run. Reading a job (GET) never signals anything: :func:`refresh` only records in the database
that a job whose driver is gone (crash, ``kill -9``, machine restart) has failed. State lives in SQLite,
so a web restart loses nothing. ``riim jobs check`` also empties the folders of jobs finished more than
``JOBS_RETENTION_DAYS`` ago (the image copies and work files; the row, log and progress stay).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import click
import psutil
from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from app import job_kinds, labelling, storage
from app.auth import admin_required, current_user
from app.db import db
from app.errors import ApiError
from app.i18n import translate
from app.inference import model_cache
from app.tail import tail_text
from models import atomic
from models.card import IMAGE_TASK

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")
ACTIVE = ("queued", "running")
STATES = (*ACTIVE, "succeeded", "failed", "cancelled")
KILL_GRACE_SECONDS = 5.0
START_TOLERANCE = 0.05  # seconds; psutil start times have the kernel's clock-tick resolution (10 ms)
DRIVER_FILE = "driver.json"  # the driver's pid and start time
KEEP_FILES = ("log.txt", "progress.json", "stages.json", "job.json", "config.json", DRIVER_FILE,  # after retention,
              job_kinds.RESULT_FILE)  # with every stage's progress-<stage>.json
LOG_TAIL = 20_000  # characters of the log returned by the API
MAX_ID = 2**63 - 1  # the largest SQLite integer: a larger job id in a URL is a 404
DRIVER = "cli.job_driver"  # run as ``python -m DRIVER <job folder>``; the web process never imports it
QUEUE_NAME = "riim-jobs"  # the RQ queue when JOBS_QUEUE_URL is set
WORKER_TASK = "cli.worker.run_job"  # what an RQ worker (`riim worker`) runs for a job: named, never imported here
RQ_WAITING = ("queued", "deferred", "scheduled", "started")  # RQ states of a job that may still run
HOST = socket.gethostname()


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Job(db.Model):
    """One training run of a project."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default=job_kinds.RETRAIN, server_default=job_kinds.RETRAIN)
    project: Mapped[str] = mapped_column(String(64), index=True)  # retrain: the project; other kinds: the model
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    stage: Mapped[str | None] = mapped_column(String(16))  # train, export, calibrate, evaluate, promote, done
    user: Mapped[str] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
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
        directory = Path(self.directory)
        if self.kind != job_kinds.RETRAIN:
            view = kind_stage_view(directory, self.state)
        else:
            view = {"progress": atomic.read_json(directory / "progress.json"),
                    **stage_view(directory, self.options or {}, self.state)}
        return {"id": self.id, "kind": self.kind, "project": self.project, "state": self.state, "stage": self.stage,
                "user": self.user,
                "created": stamp(self.created), "started": stamp(self.started), "finished": stamp(self.finished),
                "options": self.options, "parent_version": self.parent_version, "version": self.version,
                "promoted": self.promoted, "result": self.result, "error": self.error, **view}


# --- processes ---------------------------------------------------------------------------------------

def record_driver(directory: Path, process: psutil.Process) -> float:
    """Write the driver's pid, start time and host into the job's folder; answers the start time."""
    started = process.create_time()
    atomic.write_json(directory / DRIVER_FILE, {"pid": process.pid, "create_time": started, "host": HOST})
    return started


def driver_start(job: Job) -> float | None:
    """The start time recorded for the job's driver, if it is recorded for this pid on this host."""
    record = atomic.read_json(Path(job.directory) / DRIVER_FILE) if job.pid and job.directory else None
    if not record or record.get("pid") != job.pid or not isinstance(record.get("create_time"), (int, float)) \
            or record.get("host", HOST) != HOST:
        return None
    return float(record["create_time"])


# --- the queue: RQ on Redis when JOBS_QUEUE_URL is set ------------------------------------------------

def job_queue():
    """The RQ queue the workers (`riim worker`) take jobs from, or None: then the web process starts each
    job's driver itself, one job at a time (JOBS_MAX_RUNNING; a second one gets 409)."""
    url = current_app.config["JOBS_QUEUE_URL"]
    if not url:
        return None
    if "riim.queue" not in current_app.extensions:
        from redis import Redis
        from rq import Queue

        current_app.extensions["riim.queue"] = Queue(QUEUE_NAME, connection=Redis.from_url(url))
    return current_app.extensions["riim.queue"]


def queued_id(job: Job) -> str:
    return f"riim-job-{job.id}"


def queue_state(job: Job) -> str | None:
    """The job's state in the queue (queued, started, failed…), None without a queue or if it is not there."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as QueuedJob

    queue = job_queue()
    if queue is None:
        return None
    try:
        return QueuedJob.fetch(queued_id(job), connection=queue.connection).get_status(refresh=True)
    except NoSuchJobError:
        return None


def names_folder(cmdline: list[str] | None, directory: str) -> bool:
    """Whether a command line names the job's folder or a file in it (not merely a longer name: jobs/1 ≠ jobs/12)."""
    return any(arg == directory or arg.startswith(directory + os.sep) for arg in cmdline or [])


def processes(job: Job) -> list[psutil.Process]:
    """The job's live processes, with their descendants: the members of the driver's process group whose
    command line names the job's folder and that started no earlier than the driver. Nothing when the
    driver's start time is unknown, or when its pid now belongs to a process started at another time (the
    group with that id is then another program's)."""
    started = driver_start(job)
    if started is None:
        return []
    with contextlib.suppress(psutil.NoSuchProcess):  # gone: its group may outlive it, under the same id
        if abs(psutil.Process(job.pid).create_time() - started) > START_TOLERANCE:
            return []
    found = {}
    for process in psutil.process_iter(["cmdline", "status", "create_time"]):
        try:
            if (os.getpgid(process.pid) == job.pid and process.info["status"] != psutil.STATUS_ZOMBIE
                    and process.info["create_time"] >= started - START_TOLERANCE
                    and names_folder(process.info["cmdline"], job.directory)):
                found.update({p.pid: p for p in [process, *process.children(recursive=True)]})
        except (psutil.Error, ProcessLookupError):
            continue
    return list(found.values())


def alive(job: Job) -> bool:
    """Whether the job may still run. With a queue: while RQ holds it (queued, or started: then its worker
    decides its end — a retry, a failure — even when the driver is gone). Else its driver on this host is live
    (not a zombie), started at the recorded time and its command line names the job's folder."""
    if job_queue() is not None and (state := queue_state(job)) is not None:
        return state in RQ_WAITING
    started = driver_start(job)
    if started is None:
        return False
    try:
        driver = psutil.Process(job.pid) if started is not None else None
        return (bool(driver) and driver.status() != psutil.STATUS_ZOMBIE
                and abs(driver.create_time() - started) <= START_TOLERANCE and names_folder(driver.cmdline(), job.directory))
    except psutil.Error:
        return False


def kill_leftovers(job: Job) -> None:
    """SIGKILL what is left of a job whose driver is gone (its children must not publish later)."""
    for process in processes(job):
        with contextlib.suppress(psutil.Error):
            process.kill()


def stop(job: Job, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the job's processes, then SIGKILL those left after ``grace`` seconds (in a thread)."""
    running = processes(job)
    for process in running:
        with contextlib.suppress(psutil.Error):
            process.terminate()

    def finish():
        for process in psutil.wait_procs(running, timeout=grace)[1]:
            with contextlib.suppress(psutil.Error):
                process.kill()

    threading.Thread(target=finish, daemon=True).start()


def _end(job_id: int, state: str, **fields) -> bool:
    """Move an active job to a final ``state`` (committed); False if it had already ended."""
    done = db.session.execute(update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE))
                              .values(state=state, finished=now(), **fields)).rowcount
    db.session.commit()
    return bool(done)


def refresh(job: Job) -> Job:
    """Record that ``job`` failed if it is active but its driver is gone. Safe on GET: it reads processes and
    writes only this fact (idempotent); it never signals (see :func:`kill_leftovers`)."""
    if job.state in ACTIVE and not alive(job):
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


def more_needed(labelled: int, already: int, wanted: int, every: int, holdout: bool) -> int | None:
    """How many more images of a class with ``labelled`` labelled images the teacher must label to reach
    ``wanted`` training (``holdout`` False) or held-out (True) images, ``already`` being there now: the
    next labels continue the class's count, and every ``every``-th one is held out (app/labelling.py)."""
    if already >= wanted:
        return 0
    for more in range(1, 10 * (wanted + 1) * max(every, 1)):
        kept_aside = bool(every) and (labelled + more) % every == 0
        already += kept_aside == holdout
        if already >= wanted:
            return more
    return None  # never: nothing is held out (every = 0) or everything is (every = 1)


def write_folders(project: str, directory: Path, min_per_class: int, every: int = 0,
                  min_heldout: int = 0) -> tuple[dict, list[dict]]:
    """Write ``data/<class>/`` (training) and ``holdout/<class>/`` from the current labels; answers the
    image counts of the classes trained on and the classes left out, each with the reason and how many
    more images to label (``label_more``). 409 ``not_enough_labels`` when fewer than 2 classes have
    ``min_per_class`` training images, saying which images to label.

    Each count is ``{"train", "holdout", "holdout_more"}``: ``holdout_more`` is how many more images of
    the class to label for ``min_heldout`` held-out images (0 when there are enough)."""
    counts: dict[str, dict[str, int]] = {}
    for upload, row in labelling.labelled_images(project):
        counts.setdefault(row.label, {"train": 0, "holdout": 0})["holdout" if row.holdout else "train"] += 1
    ready = [label for label, count in counts.items() if count["train"] >= min_per_class]
    excluded = [{"label": label, **count, "reason": "too_few_images", "minimum": min_per_class,
                 "label_more": more_needed(count["train"] + count["holdout"], count["train"], min_per_class, every,
                                           False)}
                for label, count in sorted(counts.items()) if label not in ready]
    if len(ready) < 2:
        closest = sorted(excluded, key=lambda entry: entry["label_more"])[:2 - len(ready)]
        needs = [translate("jobs.label_more", count=entry["label_more"], label=entry["label"]) for entry in closest]
        if len(ready) + len(closest) < 2:
            needs.append(translate("jobs.label_new_class", count=more_needed(0, 0, min_per_class, every, False)))
        raise ApiError(409, "not_enough_labels", minimum=min_per_class, every=every or "-", needs=", ".join(needs),
                       counts=", ".join(f"{label} {c['train']}" for label, c in sorted(counts.items())) or "-")
    for upload, row in labelling.labelled_images(project):
        if row.label in ready:
            split = "holdout" if row.holdout else "data"
            _link(storage.path_for(upload.sha256, upload.extension),
                  directory / split / row.label / f"{upload.sha256}.{upload.extension}")
    images = {label: {**counts[label], "holdout_more": more_needed(
        counts[label]["train"] + counts[label]["holdout"], counts[label]["holdout"], min_heldout, every, True)}
        for label in sorted(ready)}
    return images, excluded


# --- the stages of a job, as the page shows them ------------------------------------------------------

STAGE_FILE = "stages.json"  # written by the driver: its own stages (export, calibrate, evaluate) + estimates


def training_stage(name: str | None) -> str | None:
    """A ``riim train`` progress stage as a job stage: data and every features pass are "features"."""
    if name is None:
        return None
    if name == "data" or name.startswith("features"):
        return "features"
    return name.split(" ")[0]  # "pruning 50%" → "pruning"


def planned_stages(options: dict) -> list[str]:
    """The stages a job with ``options`` goes through, in order."""
    from models import training_config

    try:
        config = training_config.from_dict(options.get("config") or {})
    except training_config.ConfigError:
        config = training_config.TrainConfig()
    plan = ["features", "head"]
    plan += ["crossval"] if config.crossval.folds or config.crossval.leave_one_out else []
    plan += ["finetune"] if config.finetune.enabled else []
    plan += ["pruning"] if config.pruning.sparsities else []
    plan += ["qat"] if config.qat.enabled else []
    plan += ["publish"] + (["export"] if options.get("export") else [])
    return plan + (["calibrate"] if options.get("calibrate", True) else []) + ["evaluate"]


def _seconds_since(stamp: str | float | None) -> float | None:
    if stamp is None:
        return None
    if isinstance(stamp, (int, float)):
        return max(0.0, now().timestamp() - stamp)
    try:
        return max(0.0, (now() - dt.datetime.fromisoformat(stamp)).total_seconds())
    except ValueError:
        return None


def stage_view(directory: Path, options: dict, state: str) -> dict:
    """``{"stages": [{"name", "state", "seconds", "eta_seconds", "step", "steps", "unit"}], "eta_seconds"}``
    for a job: training stages from ``progress.json`` (``riim train``), the driver's from ``stages.json``.

    ETAs are real: a training stage extrapolates its epochs (or images); a driver stage uses how long the
    same stage took in the previous jobs (``expected``), else the pace of its steps; an overrun gives no
    ETA (None) rather than "0 s". ``eta_seconds`` (whole job) is set only when every stage left has one."""
    progress = atomic.read_json(directory / "progress.json") or {}
    driver = atomic.read_json(directory / STAGE_FILE) or {}
    expected = driver.get("expected", {})
    done: dict[str, float] = {}
    for entry in progress.get("stages", []):
        name = training_stage(entry["name"])
        done[name] = round(done.get(name, 0.0) + entry["seconds"], 1)
    current = training_stage(progress.get("stage")) if progress.get("state") == "running" else None
    rows, ended = [], state not in ACTIVE
    for name in planned_stages(options):
        row = {"name": name, "state": "pending", "seconds": None, "eta_seconds": expected.get(name)}
        mine = driver.get("stages", {}).get(name)
        if mine and mine.get("finished"):
            row.update(state="done", seconds=mine["seconds"], eta_seconds=0)
        elif mine:
            elapsed = _seconds_since(mine["started"]) or 0.0
            step, steps = mine.get("step", 0), mine.get("steps")
            eta = None
            if expected.get(name) and expected[name] > elapsed:
                eta = expected[name] - elapsed
            elif step and steps and step < steps:
                eta = elapsed / step * (steps - step)
            row.update(state="running", seconds=round(elapsed, 1), step=step, steps=steps, unit="step",
                       eta_seconds=None if eta is None else round(eta, 1))
        elif name == current:
            elapsed = done.get(name, 0.0) + (_seconds_since(progress.get("stage_started")) or 0.0)
            eta = progress.get("eta_seconds")
            if eta is not None:
                eta = max(0.0, eta - (_seconds_since(progress.get("updated")) or 0.0))
            row.update(state="running", seconds=round(elapsed, 1), step=progress.get("epoch"),
                       steps=progress.get("epochs"), unit="image" if name == "features" else "epoch",
                       eta_seconds=None if eta is None else round(eta, 1))
        elif name in done:
            row.update(state="done", seconds=done[name], eta_seconds=0)
        if ended and row["state"] == "running":
            row.update(state=state if state != "succeeded" else "done", eta_seconds=None)
        elif ended and row["state"] == "pending":
            row.update(state="skipped", eta_seconds=None)
        rows.append(row)
    left = [row["eta_seconds"] for row in rows if row["state"] in ("running", "pending")]
    total = None if ended or any(value is None for value in left) else round(sum(left), 1)
    return {"stages": rows, "eta_seconds": 0 if state == "succeeded" else total}


def kind_stage_view(directory: Path, state: str) -> dict:
    """The stages of a registered kind's job (:mod:`app.job_kinds`) from each stage's progress file, and
    ``progress``: the file of the stage running (or the last one that ran), with its curves (``history``)."""
    plan = (atomic.read_json(directory / "job.json") or {}).get("stages", [])
    rows, progress, ended = [], None, state not in ACTIVE
    for stage in plan:
        found = atomic.read_json(Path(stage["progress"]))
        row = {"name": stage["name"], "state": "pending", "seconds": None, "eta_seconds": None}
        if found:
            progress = found
            finished = found.get("state") in ("done", "failed")
            row.update(state="done" if found.get("state") == "done" else "failed" if finished else "running",
                       seconds=found.get("elapsed_seconds"), step=found.get("epoch"), steps=found.get("epochs"),
                       unit="epoch", eta_seconds=0 if finished else found.get("eta_seconds"))
        if ended and row["state"] == "running":
            row.update(state=state if state != "succeeded" else "done", eta_seconds=None)
        elif ended and row["state"] == "pending":
            row.update(state="skipped")
        rows.append(row)
    left = [row["eta_seconds"] for row in rows if row["state"] in ("running", "pending")]
    total = None if ended or any(value is None for value in left) else round(sum(left), 1)
    return {"progress": progress, "stages": rows, "eta_seconds": 0 if state == "succeeded" else total}


def _options() -> dict:
    """The request's job options merged over the app's defaults, validated."""
    from models import training_config  # the config schema is part of the card contract

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
    if settings.distribute.cluster:  # the other workers would have to be started by hand: a job would wait forever
        raise ApiError(400, "bad_config", problems="distribute.cluster: a job trains on one machine (riim train "
                                                   "--cluster runs a cluster, docs/deploy.md)")
    auto = data.get("auto_promote", current_app.config["JOBS_AUTO_PROMOTE"])
    if not isinstance(auto, bool):
        raise ApiError(400, "bad_param", name="auto_promote", value=str(auto)[:80])
    return {"config": train, "min_per_class": settings.data.min_per_class, "auto_promote": auto,
            "export": current_app.config["JOBS_EXPORT"], "export_repeats": current_app.config["JOBS_EXPORT_REPEATS"]}


def check_capacity() -> None:
    """409 when the web process runs jobs itself and JOBS_MAX_RUNNING are running; with a queue, jobs wait."""
    if job_queue() is None and len(active_jobs()) >= current_app.config["JOBS_MAX_RUNNING"]:
        raise ApiError(409, "job_running")


def start(project: str) -> Job:
    """Create the job's folder and row and start its driver process (its own process group)."""
    labelling.get_project(project)
    check_capacity()
    options = _options()
    registry = model_cache().registry
    parent = registry.current(project) if project in registry.models(IMAGE_TASK) else None
    job = Job(project=project, state="queued", user=current_user().username, created=now(), directory="",
              options=options, parent_version=parent)
    db.session.add(job)
    db.session.commit()
    directory = Path(current_app.instance_path) / "jobs" / str(job.id)
    try:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        options["holdout_every"] = current_app.config["LABEL_HOLDOUT_EVERY"]
        options["min_heldout_per_class"] = current_app.config["JOBS_MIN_HELDOUT_PER_CLASS"]
        options["calibrate"] = current_app.config["JOBS_CALIBRATE"]
        options["images"], options["excluded"] = write_folders(
            project, directory, options["min_per_class"], options["holdout_every"], options["min_heldout_per_class"])
    except ApiError:
        db.session.delete(job)
        db.session.commit()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    atomic.write_bytes(directory / "job.json", json.dumps({
        "id": job.id, "project": project, "parent_version": parent, "database": current_app.config[
            "SQLALCHEMY_DATABASE_URI"], "models_dir": str(registry.root), **options}).encode())
    job.directory, job.options = str(directory), options
    db.session.commit()
    return _launch(job, directory)


def start_kind(name: str, options) -> Job:
    """Start a job of a registered kind (:mod:`app.job_kinds`) with the request's ``options``."""
    kind = job_kinds.get(name)
    if not isinstance(options, dict):
        raise ApiError(400, "bad_param", name="options", value=str(options)[:80])
    options = kind.parse(options)
    check_capacity()
    job = Job(kind=name, project=kind.model(options), state="queued", user=current_user().username, created=now(),
              directory="", options=options)
    db.session.add(job)
    db.session.commit()
    directory = Path(current_app.instance_path) / "jobs" / str(job.id)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    registry = model_cache().registry
    atomic.write_json(directory / "job.json", {
        "id": job.id, "kind": name, "database": current_app.config["SQLALCHEMY_DATABASE_URI"],
        "models_dir": str(registry.root), "stages": job_kinds.plan(kind, options, directory, registry.root)})
    job.directory = str(directory)
    db.session.commit()
    return _launch(job, directory)


def _launch(job: Job, directory: Path) -> Job:
    """Queue the job for the workers, or (no queue) start its driver in its own process group and supervise it."""
    if (queue := job_queue()) is not None:
        from rq import Retry

        retries = current_app.config["JOBS_RETRIES"]
        queue.enqueue_call(WORKER_TASK, args=(str(directory),), job_id=queued_id(job),
                           timeout=current_app.config["JOBS_TIMEOUT_SECONDS"], result_ttl=7 * 24 * 3600,
                           failure_ttl=7 * 24 * 3600, retry=Retry(max=retries) if retries else None)
        return job
    with open(directory / "log.txt", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", DRIVER, str(directory)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                   cwd=Path(__file__).resolve().parent.parent)
    record_driver(directory, psutil.Process(process.pid))  # before anything reaps it: a zombie keeps its start

    def supervise():  # reap the driver (no zombie), then kill what is left of its group
        process.wait()
        kill_leftovers(Job(pid=process.pid, directory=str(directory)))

    threading.Thread(target=supervise, daemon=True).start()
    db.session.execute(update(Job).where(Job.id == job.id).values(pid=process.pid))
    db.session.commit()
    db.session.refresh(job)
    return job


def cancel(job: Job) -> Job:
    if job.state not in ACTIVE:
        raise ApiError(409, "job_finished", id=job.id, state=job.state)
    _end(job.id, "cancelled", error="cancelled by " + current_user().username)
    stop(job)  # a driver on another host stops itself: its worker sees the state (cli/worker.py)
    if job_queue() is not None and queue_state(job) in ("queued", "deferred", "scheduled"):
        from rq.job import Job as QueuedJob

        with contextlib.suppress(Exception):  # already taken by a worker: it skips a cancelled job
            QueuedJob.fetch(queued_id(job), connection=job_queue().connection).cancel()
    db.session.refresh(job)
    return job


# --- routes ------------------------------------------------------------------------------------------

def get_or_404(job_id: int) -> Job:
    # The URL's <int:> takes any number of digits; SQLite integers stop at 2**63 - 1 (OverflowError, a 500).
    job = db.session.get(Job, job_id) if job_id <= MAX_ID else None
    if job is None:
        raise ApiError(404, "unknown_job", id=job_id)
    return refresh(job)


@bp.post("")
@admin_required
def create():
    """Retrain a project: ``{"project", "auto_promote"?, "config"?: {training config overrides}}``; another
    kind: ``{"kind", "options"}`` (:mod:`app.job_kinds`) → 202 and the job."""
    data = request.get_json(silent=True)
    if isinstance(data, dict) and data.get("kind", job_kinds.RETRAIN) != job_kinds.RETRAIN:
        return jsonify(start_kind(data["kind"], data.get("options", {})).as_json()), 202
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
    if "kind" in request.args:
        query = query.where(Job.kind == request.args["kind"])
    return jsonify(jobs=[refresh(job).as_json() for job in db.session.scalars(query)])


@bp.get("/<int:job_id>")
@admin_required
def show(job_id):
    """The job with its live progress (stage, epoch, loss, accuracy, ETA) — poll this."""
    return jsonify(get_or_404(job_id).as_json())


@bp.get("/<int:job_id>/log")
@admin_required
def log(job_id):
    text = tail_text(Path(get_or_404(job_id).directory) / "log.txt", 4 * LOG_TAIL)[-LOG_TAIL:]  # ≤ 4 bytes a character
    return current_app.response_class(text, mimetype="text/plain")


@bp.post("/<int:job_id>/cancel")
@admin_required
def cancel_job(job_id):
    return jsonify(cancel(get_or_404(job_id)).as_json())


def init_app(app: Flask) -> None:
    for key, value in {"JOBS_MAX_RUNNING": 1, "JOBS_AUTO_PROMOTE": False, "JOBS_EXPORT": True,
                       "JOBS_EXPORT_REPEATS": 5, "JOBS_TRAIN_CONFIG": {}, "JOBS_CALIBRATE": True,
                       "JOBS_MIN_HELDOUT_PER_CLASS": 5}.items():
        app.config.setdefault(key, value)
    app.register_blueprint(bp)


def check() -> list[int]:
    """Start-up work: mark the active jobs whose driver is gone (a previous run's) as failed, kill what is
    left of the processes of every unsuccessful job, empty the folders of jobs past the retention; answers
    the ids of the jobs marked failed."""
    jobs = list(db.session.scalars(select(Job).where(Job.state.in_(ACTIVE))))
    failed = [job.id for job in jobs if refresh(job).state == "failed"]
    for job in db.session.scalars(select(Job).where(Job.state != "succeeded", Job.pid.is_not(None))):
        if not alive(job):
            kill_leftovers(job)
    clean_folders()
    return failed


def clean_folders() -> list[int]:
    """Empty the folders of jobs finished more than ``JOBS_RETENTION_DAYS`` ago (0 = never): the image copies
    (``data/``, ``holdout/``) and the work files go; :data:`KEEP_FILES` (log, progress) stay with the row.
    Answers the ids of the folders emptied."""
    days = current_app.config["JOBS_RETENTION_DAYS"]
    if not days:
        return []
    since = now() - dt.timedelta(days=days)
    emptied = []
    for job in db.session.scalars(select(Job).where(Job.state.not_in(ACTIVE), Job.finished < since)):
        directory = Path(job.directory)
        extra = [path for path in directory.iterdir() if path.name not in KEEP_FILES
                 and not path.name.startswith("progress-")] if directory.is_dir() else []
        for path in extra:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
        if extra:
            emptied.append(job.id)
    return emptied


@click.group("jobs")
def jobs_cli():
    """Training jobs started from the labelling page."""


@jobs_cli.command("check")
def check_command():
    """Mark jobs left running by a stopped server as failed (`make run`/`make serve` run this first)."""
    from app import create_app

    with create_app().app_context():
        failed = check()
    click.echo(f"{len(failed)} orphaned job(s) marked failed" + (f": {failed}" if failed else ""))
