"""``riim worker``: an RQ worker that runs the jobs the web app queues in Redis (``JOBS_QUEUE_URL``).

RQ is the queue: jobs wait instead of getting a 409, any number of workers take them, a job outlives a web
restart, and RQ keeps each job's outcome. A worker runs a job as the web app does without a queue: the job
driver (``python -m cli.job_driver <folder>``) in its own process group, its pid, start time and host
recorded, so the pages show its progress and cancel stops it. A job cancelled from another host is stopped
by its worker, which watches the job's row.

Failures. The driver dies with its worker (``PR_SET_PDEATHSIG``); on that signal it marks the job failed and
kills its group, so a killed worker's job ends failed and never publishes later (a version is published
atomically: complete or absent, and never promoted by a failed job). A driver that ends without recording an
end (killed, out of memory) while its worker lives is queued again, at most ``JOBS_RETRIES`` times.
Workers must see the web app's instance folder and database (the same machine or shared volumes).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import psutil
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from app.jobs import ACTIVE, DRIVER, QUEUE_NAME, Job, kill_leftovers, now, record_driver, stop
from cli.job_driver import DIE_WITH

POLL_SECONDS = 1.0  # how often a worker checks that its job was not cancelled
REPOSITORY = Path(__file__).resolve().parent.parent


class RetryJob(RuntimeError):
    """The driver ended without recording an end: RQ queues the job again while it has retries left."""


def run_job(directory: str) -> str:
    """Run the job in ``directory`` (its ``job.json`` written by the web app); answers its final state."""
    from rq import get_current_job

    folder = Path(directory)
    spec = json.loads((folder / "job.json").read_text())
    engine = create_engine(spec["database"])

    def state() -> str | None:
        with Session(engine) as session:
            return session.scalar(select(Job.state).where(Job.id == spec["id"]))

    def record(**fields) -> None:
        with Session(engine) as session:
            session.execute(update(Job).where(Job.id == spec["id"], Job.state.in_(ACTIVE)).values(**fields))
            session.commit()

    if state() not in ACTIVE:
        return f"skipped: the job is {state()}"
    with open(folder / "log.txt", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", DRIVER, directory], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPOSITORY,
                                   env={**os.environ, DIE_WITH: str(os.getpid())})
    record_driver(folder, psutil.Process(process.pid))
    record(pid=process.pid, error=None)
    job = Job(pid=process.pid, directory=directory)
    while process.poll() is None:
        time.sleep(POLL_SECONDS)
        if state() not in ACTIVE:  # cancelled, maybe on another host
            stop(job)
            process.wait()
    kill_leftovers(job)
    if state() in ACTIVE:
        why = f"the job process ended with code {process.returncode} without finishing"
        current = get_current_job()
        if current is not None and current.retries_left:
            with open(folder / "log.txt", "a") as log:
                log.write(f"riim worker: {why}; queued again ({current.retries_left} retries left)\n")
            record(state="queued", pid=None, error=why + "; queued again")
            raise RetryJob(why)
        record(state="failed", finished=now(), error=why)
    return state()


@click.command("worker")
@click.option("--url", envvar="RIIM_JOBS_QUEUE_URL", metavar="URL",
              help="The Redis the web app queues jobs in (default: $RIIM_JOBS_QUEUE_URL), e.g. redis://127.0.0.1:6379/0.")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty instead of waiting for more jobs.")
def worker(url, burst):
    """Run queued training jobs (start as many workers as the machines can train at once)."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    if not url:
        raise click.UsageError("no queue: set RIIM_JOBS_QUEUE_URL (the same as the web app's) or pass --url")
    connection = Redis.from_url(url)
    click.echo(f"riim worker: taking jobs from the queue {QUEUE_NAME!r} in {url}", err=True)
    SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(burst=burst)


COMMANDS = (worker,)
