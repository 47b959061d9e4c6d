"""Job processes are signalled only when proven the job's (recorded pid + start time + command line), and only
by POSTs and commands: reading a job (GET) never signals. Real processes; no training."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from app import jobs
from app.db import db
from app.jobs import Job
from tests.support import wait_until


@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


@pytest.fixture
def spawned():
    """Start processes (own session: each leads its own process group) and kill them after the test."""
    started = []

    def spawn(args: list[str]) -> psutil.Process:
        started.append(subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        process = psutil.Process(started[-1].pid)
        wait_until(lambda: process.cmdline(), 5, "the process did not start")  # exec done
        return process

    yield spawn
    for process in started:
        process.kill()
        process.wait()


def fake_job(app, pid: int, driver_started: float, state: str = "running") -> Job:
    """A job row whose recorded driver is (pid, driver_started), as start() records it."""
    with app.app_context():
        job = Job(project="pets", state=state, user="admin", directory="", options={}, created=jobs.now(), pid=pid)
        db.session.add(job)
        db.session.commit()
        directory = Path(app.instance_path) / "jobs" / str(job.id)
        directory.mkdir(parents=True)
        (directory / "log.txt").write_text("")
        (directory / jobs.DRIVER_FILE).write_text(f'{{"pid": {pid}, "create_time": {driver_started}}}')
        job.directory = str(directory)
        db.session.commit()
        return job.id


def state(app, job_id: int) -> str:
    with app.app_context():
        return db.session.get(Job, job_id).state


@pytest.mark.parametrize("naming_the_folder", [False, True])
def test_a_reused_pid_is_never_signalled(app, admin_client, spawned, naming_the_folder):
    """The driver died long ago and its pid now belongs to an unrelated process: a plain ``sleep``, or a
    ``tail -f`` of the job's log (its command line even names the job's folder)."""
    first = fake_job(app, 0, 0.0)  # placeholder ids so the folders exist before the processes start
    second = fake_job(app, 0, 0.0)
    folders = {job_id: Path(app.instance_path) / "jobs" / str(job_id) for job_id in (first, second)}
    unrelated = [spawned(["tail", "-f", str(folders[job_id] / "log.txt")] if naming_the_folder else ["sleep", "120"])
                 for job_id in (first, second)]
    with app.app_context():
        for job_id, process in zip((first, second), unrelated):
            job = db.session.get(Job, job_id)
            job.pid = process.pid
            (folders[job_id] / jobs.DRIVER_FILE).write_text(  # the real driver started an hour earlier
                f'{{"pid": {process.pid}, "create_time": {process.create_time() - 3600}}}')
        db.session.commit()

    assert admin_client.get(f"/api/v1/jobs/{first}").json["state"] == "failed"  # its driver is gone
    assert admin_client.post(f"/api/v1/jobs/{second}/cancel").json["error"]["code"] == "job_finished"  # failed too
    with app.app_context():
        jobs.check()
    time.sleep(0.3)
    assert all(process.is_running() and process.status() != psutil.STATUS_ZOMBIE for process in unrelated)


def test_get_never_signals_cancel_and_check_stop_only_the_jobs_processes(app, admin_client, spawned):
    directory = Path(app.instance_path) / "jobs" / "1"
    job_id = fake_job(app, 0, 0.0)
    assert job_id == 1
    # a driver and its child (same process group; both name the job's folder), like python -m cli.job_driver
    driver = spawned([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
                      "'import time; time.sleep(120)', sys.argv[1] + '/data']); time.sleep(120)", str(directory)])
    child = wait_until(lambda: driver.children(), 5, "no child")[0]
    with app.app_context():
        db.session.get(Job, job_id).pid = driver.pid
        db.session.commit()
        jobs.record_driver(directory, driver)
    assert admin_client.get(f"/api/v1/jobs/{job_id}").json["state"] == "running"  # proven alive

    driver.kill()  # kill -9 of the driver; the web process that started it would now kill the child
    wait_until(lambda: driver.status() == psutil.STATUS_ZOMBIE, 5, "driver not dead")
    assert admin_client.get(f"/api/v1/jobs/{job_id}").json["state"] == "failed"
    assert admin_client.get("/api/v1/jobs").status_code == 200
    time.sleep(0.3)
    assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE  # reads signalled nothing
    with app.app_context():
        jobs.check()  # riim jobs check / app.prepare
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 5, "child still running")


def test_cancel_stops_a_live_driver(app, admin_client, spawned):
    directory = Path(app.instance_path) / "jobs" / "1"
    job_id = fake_job(app, 0, 0.0)
    driver = spawned([sys.executable, "-c", "import time; time.sleep(120)", str(directory)])
    with app.app_context():
        db.session.get(Job, job_id).pid = driver.pid
        db.session.commit()
        jobs.record_driver(directory, driver)
    assert admin_client.post(f"/api/v1/jobs/{job_id}/cancel").json["state"] == "cancelled"
    wait_until(lambda: not driver.is_running() or driver.status() == psutil.STATUS_ZOMBIE, 5, "driver still running")


def test_names_folder_is_exact():
    assert jobs.names_folder(["x", "/i/jobs/1"], "/i/jobs/1") and jobs.names_folder(["/i/jobs/1/data"], "/i/jobs/1")
    assert not jobs.names_folder(["/i/jobs/12"], "/i/jobs/1") and not jobs.names_folder(None, "/i/jobs/1")
