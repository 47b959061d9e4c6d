"""Small helpers shared by tests."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TypeVar

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
