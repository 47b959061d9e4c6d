"""Read the CNN lab's MLflow tracking store (``<lab dir>/mlflow.db``) for the runs page — read-only SQL.

Serving does not import mlflow (a heavy client with its own server stack, and the layer rule keeps app/
to its serving dependencies). MLflow's SQLite backend is a documented, migrated schema: ``experiments``,
``runs``, ``params``, ``tags``, ``metrics`` (every logged value, with ``step``) and ``latest_metrics``.
These tables are read here with SQLAlchemy on a read-only connection (``mode=ro``), so the page shows
the tracker itself — a run logged a second ago included — and can never change it.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, text

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SUMMARY_METRICS = ("test_accuracy", "val_accuracy", "accuracy", "val_loss", "loss", "parameters", "train_seconds")
SUMMARY_PARAMS = ("data.source", "data.train_images", "model.depth", "model.width", "model.dropout",
                  "train.learning_rate", "train.batch_size", "train.epochs", "augment.strength",
                  "transfer.input_size")


@lru_cache(maxsize=8)
def _engine(path: str):
    return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", future=True)


def _connect(lab_dir: Path):
    path = Path(lab_dir) / "mlflow.db"
    if not path.is_file():
        return None
    return _engine(str(path.resolve())).connect()


def _grouped(rows, key_index: int = 0):
    out: dict = {}
    for row in rows:
        out.setdefault(row[key_index], []).append(row)
    return out


def runs(lab_dir: Path, kind: str | None = None, status: str | None = None, query: str | None = None,
         limit: int = 200) -> list[dict]:
    """Active runs, newest first, with their riim tags, main parameters and latest metrics."""
    connection = _connect(lab_dir)
    if connection is None:
        return []
    with connection:
        found = connection.execute(text(
            "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, e.name FROM runs r "
            "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.lifecycle_stage = 'active' "
            "ORDER BY r.start_time DESC")).all()
        ids = [row[0] for row in found]
        if not ids:
            return []
        tags = _grouped(connection.execute(text("SELECT run_uuid, key, value FROM tags WHERE key LIKE 'riim.%'")).all())
        params = _grouped(connection.execute(text("SELECT run_uuid, key, value FROM params")).all())
        metrics = _grouped(connection.execute(text(
            "SELECT run_uuid, key, value, step, is_nan FROM latest_metrics")).all())
    out = []
    for run_id, name, state, start, end, experiment in found:
        run_tags = {key[5:]: value for _, key, value in tags.get(run_id, [])}
        run = {"id": run_id, "name": name, "status": state.lower(), "experiment": experiment,
               "kind": run_tags.get("kind", "train" if experiment != "lab" else "lab-train"),
               "started": start, "seconds": round((end - start) / 1000, 1) if end and start else None,
               "tags": run_tags,
               "params": {key: value for _, key, value in params.get(run_id, []) if key in SUMMARY_PARAMS},
               "metrics": {key: (None if is_nan else value) for _, key, value, _, is_nan in metrics.get(run_id, [])
                           if key in SUMMARY_METRICS or key.endswith(".val_accuracy")}}
        if kind and run["kind"] != kind or status and run["status"] != status:
            continue
        if query and query.lower() not in " ".join([name or "", experiment, *run_tags.values(),
                                                    *run["params"].values()]).lower():
            continue
        out.append(run)
        if len(out) >= limit:
            break
    return out


def best(found: list[dict]) -> str | None:
    """The finished run with the highest test accuracy among ``found``."""
    scored = [r for r in found if r["status"] == "finished" and r["metrics"].get("test_accuracy") is not None]
    return max(scored, key=lambda r: r["metrics"]["test_accuracy"])["id"] if scored else None


def run(lab_dir: Path, run_id: str) -> dict | None:
    """One run: every parameter and tag, and each metric's history as ``[[step, value], …]`` (NaN as null)."""
    connection = _connect(lab_dir)
    if connection is None:
        return None
    with connection:
        head = connection.execute(text(
            "SELECT r.name, r.status, r.start_time, r.end_time, e.name FROM runs r JOIN experiments e "
            "ON e.experiment_id = r.experiment_id WHERE r.run_uuid = :id"), {"id": run_id}).first()
        if head is None:
            return None
        params = connection.execute(text("SELECT key, value FROM params WHERE run_uuid = :id"), {"id": run_id}).all()
        tags = connection.execute(text("SELECT key, value FROM tags WHERE run_uuid = :id AND key LIKE 'riim.%'"),
                                  {"id": run_id}).all()
        values = connection.execute(text(
            "SELECT key, step, value, is_nan FROM metrics WHERE run_uuid = :id ORDER BY key, step, timestamp"),
            {"id": run_id}).all()
    curves: dict[str, dict[int, float | None]] = {}
    for key, step, value, is_nan in values:
        curves.setdefault(key, {})[int(step)] = None if is_nan else value  # the last value logged for a step
    name, state, start, end, experiment = head
    return {"id": run_id, "name": name, "status": state.lower(), "experiment": experiment, "started": start,
            "seconds": round((end - start) / 1000, 1) if end and start else None,
            "params": dict(params), "tags": {key[5:]: value for key, value in tags},
            "curves": {key: sorted(points.items()) for key, points in curves.items()}}
