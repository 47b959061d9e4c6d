"""Training alerts: rules over the per-epoch history (pure Python, no TensorFlow) and where alerts go.

Rules (each fires at most once per run; thresholds in :class:`models.lab_config.AlertConfig`):

- ``nan_loss``      the training loss is NaN or infinite (also checked after every batch by the trainer);
- ``divergence``    the training loss is above ``divergence_factor`` × its minimum so far (and at least
                    :data:`MIN_RISE` above it, so tiny losses near zero do not count);
- ``overfitting``   validation loss rose while training loss fell, ``overfit_epochs`` epochs in a row;
- ``plateau``       validation loss has not improved by ``min_delta`` in the last ``plateau_epochs`` epochs;
- ``threshold``     validation accuracy reached ``accuracy_threshold``;
- ``finished`` / ``failed``  the run ended (raised by the trainer, not by the history).

A :class:`Notifier` sends each alert to every sink: the log (``riim.lab`` logger), the alerts file the app
shows as notifications (JSON lines, one ``write`` per alert with ``O_APPEND``), the tracked run, and
optionally a webhook URL (JSON POST; a failing webhook is logged, never fatal).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import urllib.request
import uuid
from pathlib import Path

from models.lab_config import AlertConfig

log = logging.getLogger("riim.lab")
FILE = "alerts.jsonl"
MIN_RISE = 0.1  # divergence: smallest rise of the loss (nats) that counts  # in the lab folder (training/tracking.py lab_dir)
LEVELS = {"nan_loss": "danger", "divergence": "danger", "failed": "danger", "overfitting": "warning",
          "plateau": "warning", "threshold": "success", "finished": "info"}


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def nan_loss(history: dict, config: AlertConfig):
    loss = history.get("loss", [])
    if loss and not _finite(loss[-1]):
        return {"loss": str(loss[-1])}


def divergence(history: dict, config: AlertConfig):
    loss = [v for v in history.get("loss", []) if _finite(v)]
    low = min(loss[:-1]) if len(loss) >= 2 else None
    if low is not None and loss[-1] > config.divergence_factor * low and loss[-1] - low >= MIN_RISE:
        return {"loss": round(loss[-1], 4), "minimum": round(low, 4), "factor": config.divergence_factor}


def overfitting(history: dict, config: AlertConfig):
    loss, val = history.get("loss", []), history.get("val_loss", [])
    k = config.overfit_epochs
    if len(val) < k + 1 or len(loss) < k + 1:
        return None
    if all(val[-i] > val[-i - 1] and loss[-i] < loss[-i - 1] for i in range(1, k + 1)):
        return {"epochs": k, "val_loss": round(val[-1], 4), "val_loss_min": round(min(val), 4)}


def plateau(history: dict, config: AlertConfig):
    val = [v for v in history.get("val_loss", []) if _finite(v)]
    p = config.plateau_epochs
    if len(val) > p and min(val[-p:]) > min(val[:-p]) - config.min_delta:
        return {"epochs": p, "best": round(min(val[:-p]), 4), "recent": round(min(val[-p:]), 4)}


def threshold(history: dict, config: AlertConfig):
    acc = history.get("val_accuracy", [])
    if config.accuracy_threshold > 0 and acc and _finite(acc[-1]) and acc[-1] >= config.accuracy_threshold:
        return {"val_accuracy": round(acc[-1], 4), "threshold": config.accuracy_threshold}


RULES = {rule.__name__: rule for rule in (nan_loss, divergence, overfitting, plateau, threshold)}
MESSAGES = {  # English for logs and webhooks; the app translates from ``rule`` + ``values`` (lab.alert.*)
    "nan_loss": "loss is {loss}: training broke down (learning rate too high?)",
    "divergence": "loss {loss} is more than {factor}x its minimum {minimum}: training diverges",
    "overfitting": "validation loss rose while training loss fell for {epochs} epochs: overfitting begins",
    "plateau": "validation loss has not improved for {epochs} epochs (best {best})",
    "threshold": "validation accuracy {val_accuracy} reached the threshold {threshold}",
    "finished": "run finished: test accuracy {test_accuracy}",
    "failed": "run failed: {error}",
}


class Rules:
    """The rules of one run: :meth:`check` returns the alerts that fire for the first time."""

    def __init__(self, config: AlertConfig):
        self.config = config
        self.fired: set[str] = set()

    def check(self, history: dict) -> list[tuple[str, dict]]:
        found = []
        for name, rule in RULES.items():
            if name in self.fired:
                continue
            values = rule(history, self.config)
            if values is not None:
                self.fired.add(name)
                found.append((name, values))
        return found


class Notifier:
    """Sends alerts of one run to the log, the alerts file, the tracker (``record(alert)``) and a webhook."""

    def __init__(self, alerts_file: Path | None, run: dict, webhook: str | None = None, record=None,
                 timeout: float = 3.0):
        self.file = Path(alerts_file) if alerts_file else None
        self.run, self.webhook, self.record, self.timeout = run, webhook, record, timeout
        self.sent: list[dict] = []

    def send(self, rule: str, values: dict, epoch: int | None = None) -> dict:
        alert = {"id": uuid.uuid4().hex, "rule": rule, "level": LEVELS[rule], "epoch": epoch, "values": values,
                 "message": MESSAGES[rule].format_map(_Missing(values)), **self.run,
                 "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        self.sent.append(alert)
        log.warning(json.dumps({"alert": rule, "run": self.run.get("run_name"), "message": alert["message"]}))
        if self.file:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            line = (json.dumps(alert, ensure_ascii=False) + "\n").encode()
            descriptor = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line)  # one write per line: readers never see half an alert
            finally:
                os.close(descriptor)
        if self.record:
            self.record(alert)
        if self.webhook:
            self._post(alert)
        return alert

    def _post(self, alert: dict) -> None:
        request = urllib.request.Request(self.webhook, data=json.dumps(alert).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(1024)
        except OSError as error:  # URLError, HTTPError, timeouts: the run goes on
            log.warning(f"webhook {self.webhook} failed: {error}")


class _Missing(dict):
    def __missing__(self, key):
        return "?"
