"""Small helpers shared by tests."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
import redis

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, message: str | Callable[[], str],
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy, which is returned; after ``timeout`` seconds
    raise AssertionError with ``message`` (a string, or a function called then for the latest state)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout} s: {message() if callable(message) else message}")
        time.sleep(interval)


def kill_active_jobs(app) -> None:
    """Kill the process group of every job still active in ``app``'s database: a failed test must not leave
    a trainer running."""
    from app.db import db
    from app.jobs import ACTIVE, Job

    with app.app_context():
        for job in db.session.scalars(db.select(Job).where(Job.state.in_(ACTIVE), Job.pid.is_not(None))):
            try:
                os.killpg(job.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def free_ports(count: int) -> list[int]:
    """COUNT distinct TCP ports free on 127.0.0.1 (all held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    return free_ports(1)[0]


@contextlib.contextmanager
def redis_server():
    """A real, throw-away redis-server on 127.0.0.1 (Debian package redis-server); yields its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server (make setup does it as root)")
    port = free_port()
    server = subprocess.Popen([executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_connect_timeout=1)

        def answers():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, 10, "redis-server did not answer PING")
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
