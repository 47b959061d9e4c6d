"""Progress of a training run: a JSON file the web app can poll, structured log lines, a terminal bar.

The file (written atomically, so a reader never sees half of it) holds::

    {"state": "running", "stage": "head", "epoch": 3, "epochs": 60, "loss": 0.41, "accuracy": 0.88,
     "val_loss": 0.45, "val_accuracy": 0.86, "eta_seconds": 12.5, "elapsed_seconds": 40.1, "updated": ...}

``history`` holds the current stage's metrics per step (``[{"step": 1, "loss": …}, …]``) for live curves.
``stages`` lists the stages already finished, in order, with their durations (``[{"name": "features",
"seconds": 3.2}, …]``) and ``stage_started`` is when the current one began, so a reader can show each stage
with its time. ``state`` ends as ``"done"`` (with ``version``) or ``"failed"`` (with ``error``). Every update
is also logged as one JSON line on the ``riim.training`` logger.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

from tqdm import tqdm

from models import atomic

log = logging.getLogger("riim.training")


class Progress:
    def __init__(self, path: str | Path | None = None, bars: bool = True):
        self.path = Path(path) if path else None
        self.bars = bars
        self.started = time.monotonic()
        self.state: dict = {"state": "running", "stages": []}
        self._bar = None
        self._stage_started = self.started

    def update(self, **fields) -> None:
        """Merge ``fields`` into the state, then write the file and log one line."""
        self.state.update(fields)
        self.state["elapsed_seconds"] = round(time.monotonic() - self.started, 1)
        self.state["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if self.path:
            atomic.write_json(self.path, self.state)
        log.info(json.dumps({key: value for key, value in self.state.items() if key != "updated"}))

    def stage(self, name: str, total: int | None = None, unit: str = "epoch") -> None:
        """Start a stage of ``total`` steps (epochs, images…); the previous one joins ``stages``."""
        self.close_bar()
        self._end_stage()
        self._stage_started = time.monotonic()
        self.state["stage_started"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for key in ("epoch", "epochs", "loss", "accuracy", "val_loss", "val_accuracy", "eta_seconds", "history"):
            self.state.pop(key, None)
        if self.bars and total:
            self._bar = tqdm(total=total, desc=name, unit=unit, leave=False)
        self.update(stage=name, **({"epochs": total} if unit == "epoch" and total else {}))

    def step(self, done: int, total: int, **metrics) -> None:
        """``done`` of ``total`` steps finished; the ETA extrapolates the stage's pace."""
        spent = time.monotonic() - self._stage_started
        eta = spent / done * (total - done) if done else None
        if self._bar is not None:
            self._bar.total = total
            self._bar.update(done - self._bar.n)
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items() if isinstance(v, float)})
        values = {k: round(float(v), 4) for k, v in metrics.items()}
        if values:  # the stage's curves so far, for live charts (one entry per step that reports metrics)
            self.state.setdefault("history", []).append({"step": done, **values})
        self.update(epoch=done, epochs=total, eta_seconds=None if eta is None else round(eta, 1), **values)

    def _end_stage(self) -> None:
        """Record the running stage (if any) with its duration in ``stages``."""
        if self.state.get("stage"):
            self.state["stages"].append({"name": self.state["stage"],
                                         "seconds": round(time.monotonic() - self._stage_started, 1)})
            self.state["stage"] = None

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def finish(self, **fields) -> None:
        self.close_bar()
        self._end_stage()
        self.update(state="done", eta_seconds=0, **fields)

    def fail(self, error: str) -> None:
        self.close_bar()
        self.update(state="failed", error=error)
