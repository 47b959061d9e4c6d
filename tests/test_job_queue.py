"""Jobs on a real queue: gunicorn (2 web workers) queues them in a real redis-server, two `riim worker`
processes run them. Five jobs at once all finish (none gets a 409); a worker killed mid-job leaves that job
failed with every process of it gone, while the other worker goes on with the rest."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.conftest import ADMIN, serving_app
from tests.support import free_port, redis_server, wait_until
from tests.test_shared_limits import BIN, REPO, request


@pytest.fixture(scope="module")
def redis_uri():
    with redis_server() as uri:
        yield uri


@pytest.fixture(scope="module")
def queue_stack(tiny_registry, tmp_path_factory, redis_uri):
    """gunicorn serving tests/queue_app.py with JOBS_QUEUE_URL, and two workers; (port, workers, instance)."""
    tmp_path = tmp_path_factory.mktemp("queue")
    instance, port = tmp_path / "instance", free_port()
    env = {**os.environ, "RIIM_ENV": "production", "RIIM_INSTANCE_PATH": str(instance), "RIIM_WORKERS": "2",
           "RIIM_MODELS_DIR": str(tiny_registry.root), "RIIM_BIND": f"127.0.0.1:{port}",
           "RIIM_JOBS_QUEUE_URL": redis_uri, "RIIM_RATELIMIT_STORAGE_URI": redis_uri}
    env.pop("RIIM_SECRET_KEY", None)
    os.environ["RIIM_INSTANCE_PATH"] = str(instance)
    try:
        with serving_app({"MODELS_DIR": str(tiny_registry.root)}).app_context():
            from app.auth import create_user

            create_user(**ADMIN)
    finally:
        del os.environ["RIIM_INSTANCE_PATH"]
    log = open(tmp_path / "stack.log", "wb")
    web = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(REPO / "app" / "gunicorn.conf.py"),
                            "tests.queue_app:create()"], cwd=REPO, env=env, stdout=log, stderr=log)
    workers = [subprocess.Popen([str(BIN / "riim"), "worker"], cwd=REPO, env=env, stdout=log, stderr=log)
               for _ in range(2)]
    try:
        def ready():
            assert web.poll() is None, (tmp_path / "stack.log").read_text()
            try:
                return request(port, "GET", "/api/v1/ready")[0] == 200
            except OSError:
                return False

        wait_until(ready, 60, lambda: (tmp_path / "stack.log").read_text())
        yield port, workers, instance
    finally:
        for process in (web, *workers):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (web, *workers):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def admin_headers(port: int) -> dict:
    status, cookie, body = request(port, "GET", "/api/v1/auth/me")
    headers = {"Content-Type": "application/json", "Cookie": cookie.split(";")[0],
               "X-CSRFToken": json.loads(body)["csrf_token"]}
    status, cookie, body = request(port, "POST", "/api/v1/auth/login", json.dumps(ADMIN).encode(), headers)
    assert status == 200, body
    return {**headers, "Cookie": cookie.split(";")[0], "X-CSRFToken": json.loads(body)["csrf_token"]}


def submit(port: int, headers: dict, kind: str) -> int:
    status, _, body = request(port, "POST", "/api/v1/jobs", json.dumps({"kind": kind}).encode(), headers)
    assert status == 202, body
    return json.loads(body)["id"]


def job(port: int, headers: dict, job_id: int) -> dict:
    return json.loads(request(port, "GET", f"/api/v1/jobs/{job_id}", headers=headers)[2])


def test_five_jobs_at_once_all_finish_on_two_workers(queue_stack):
    port, workers, _ = queue_stack
    headers = admin_headers(port)
    ids = [submit(port, headers, "test-quick") for _ in range(5)]
    wait_until(lambda: all(job(port, headers, i)["state"] == "succeeded" for i in ids), 120,
               lambda: [(i, job(port, headers, i)["state"], job(port, headers, i)["error"]) for i in ids])


def test_a_killed_worker_fails_its_job_and_the_other_worker_goes_on(queue_stack):
    port, workers, instance = queue_stack
    headers = admin_headers(port)
    slow = submit(port, headers, "test-slow")
    wait_until(lambda: job(port, headers, slow)["state"] == "running" and job(port, headers, slow)["stage"], 60,
               lambda: job(port, headers, slow))
    driver = json.loads((instance / "jobs" / str(slow) / "driver.json").read_text())["pid"]
    owner = next(worker for worker in workers if psutil.Process(driver).ppid() == worker.pid)
    group = os.getpgid(driver)
    owner.send_signal(signal.SIGKILL)
    quick = [submit(port, headers, "test-quick") for _ in range(2)]
    wait_until(lambda: job(port, headers, slow)["state"] == "failed", 30, lambda: job(port, headers, slow))
    assert "the worker running the job ended" in job(port, headers, slow)["error"]
    wait_until(lambda: not [p for p in psutil.process_iter() if p.pid != os.getpid() and _group(p) == group], 15,
               "processes of the killed worker's job are still running")
    wait_until(lambda: all(job(port, headers, i)["state"] == "succeeded" for i in quick), 90,
               lambda: [job(port, headers, i) for i in quick])


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, psutil.Error):
        return None


def test_without_a_queue_the_worker_says_what_to_set():
    run = subprocess.run([sys.executable, "-m", "cli.main", "worker"], cwd=REPO, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "RIIM_JOBS_QUEUE_URL"}, timeout=120)
    assert run.returncode == 2 and "set RIIM_JOBS_QUEUE_URL" in run.stderr


def test_a_driver_that_dies_is_run_again_once(queue_stack):
    port, _, instance = queue_stack
    headers = admin_headers(port)
    slow = submit(port, headers, "test-slow")
    wait_until(lambda: job(port, headers, slow)["state"] == "running" and job(port, headers, slow)["stage"], 60,
               lambda: job(port, headers, slow))
    first = json.loads((instance / "jobs" / str(slow) / "driver.json").read_text())["pid"]
    os.kill(first, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    wait_until(lambda: job(port, headers, slow)["state"] == "succeeded", 120, lambda: job(port, headers, slow))
    log = request(port, "GET", f"/api/v1/jobs/{slow}/log", headers=headers)[2].decode()
    assert "ended with code -9 without finishing; queued again (1 retries left)" in log
    assert json.loads((instance / "jobs" / str(slow) / "driver.json").read_text())["pid"] != first
