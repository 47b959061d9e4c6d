"""Experiment tracking with MLflow (mlflow-skinny: the tracking client and SQLite store, without the UI).

Every ``riim train``, ``riim lab train`` and sweep trial is one MLflow run in the local store: a SQLite
database (``mlflow.db``) and an artifact folder in the lab folder ``instance/lab/`` (``RIIM_LAB_DIR`` moves
it; the alerts file and the sweeps live there too). A run logs
its parameters, per-epoch metrics (``loss``, ``val_accuracy``… with the epoch as MLflow's ``step``), the
model card (``card.json``), artifacts (curves, confusion matrix, alerts) and tags (``riim.kind``,
``riim.model``, ``riim.sweep``…). The app's runs page reads the same SQLite tables (app/lab_runs.py);
``mlflow.search_runs`` and MLflow's own UI read them too.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from models import atomic

REPO = Path(__file__).resolve().parent.parent
DB_FILE = "mlflow.db"
ARTIFACTS = "artifacts"


def lab_dir() -> Path:
    """``$RIIM_LAB_DIR``, else ``lab/`` in the app's instance folder (``$RIIM_INSTANCE_PATH`` or ./instance)."""
    if os.environ.get("RIIM_LAB_DIR"):
        return Path(os.environ["RIIM_LAB_DIR"])
    return Path(os.environ.get("RIIM_INSTANCE_PATH", REPO / "instance")) / "lab"


def tracking_uri(directory: Path | None = None) -> str:
    return f"sqlite:///{(directory or lab_dir()).resolve() / DB_FILE}"


def _mlflow(directory: Path):
    import mlflow  # imported here: ~1 s, only for runs that track

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / DB_FILE).is_file():
        _copy_empty_store(mlflow, directory / DB_FILE)
    mlflow.set_tracking_uri(tracking_uri(directory))
    return mlflow


def _copy_empty_store(mlflow, target: Path) -> None:
    """A new store is a copy of an empty one made once per MLflow version: creating the schema runs
    MLflow's ~50 migrations (seconds), a copy takes milliseconds (tests make many lab folders)."""
    template = Path(tempfile.gettempdir()) / f"riim-mlflow-{mlflow.__version__}-empty.db"
    with open(template.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.is_file():
            scratch = template.with_name(f"{template.name}.{os.getpid()}")
            scratch.unlink(missing_ok=True)
            mlflow.MlflowClient(f"sqlite:///{scratch}").search_experiments()  # runs the migrations
            os.replace(scratch, template)
    with atomic.replacing(target) as temp:
        shutil.copyfile(template, temp)


def experiment_id(mlflow, name: str, directory: Path) -> str:
    """The experiment called ``name``, created with its artifacts under ``directory/artifacts``."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (directory / ARTIFACTS / name).resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 — another process created it in between
        return mlflow.get_experiment_by_name(name).experiment_id


class Run:
    """One tracked run; use :func:`start`. Methods never raise for tracking problems after the start."""

    def __init__(self, mlflow, run):
        self.mlflow, self.run = mlflow, run
        self.id = run.info.run_id
        self.name = run.info.run_name
        self.client = mlflow.MlflowClient()

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step, run_id=self.id)

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.id, key, str(value))

    def log_json(self, data, name: str) -> None:
        self.client.log_dict(self.id, data, name)

    def log_file(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.id, str(path), folder)

    def log_figure(self, figure, name: str) -> None:
        self.client.log_figure(self.id, figure, name)


@contextlib.contextmanager
def start(experiment: str, run_name: str, params: dict, tags: dict | None = None, directory: Path | None = None):
    """A tracked run: parameters and tags logged at once; the run ends FINISHED, or FAILED on an exception."""
    directory = Path(directory or lab_dir())
    mlflow = _mlflow(directory)
    with mlflow.start_run(experiment_id=experiment_id(mlflow, experiment, directory), run_name=run_name,
                          tags={k: str(v) for k, v in (tags or {}).items()}) as active:
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        yield Run(mlflow, active)


def _param(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def flatten(values: dict, prefix: str = "") -> dict:
    """``{"head": {"epochs": 60}}`` → ``{"head.epochs": 60}`` (a nested config as tracker parameters)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def log_history(run: Run, curves: dict[str, dict[str, list[float]]]) -> None:
    """Curves known only at the end (``riim train``'s stages): one metric per stage and key, step = epoch."""
    for stage, curve in curves.items():
        for key, values in curve.items():
            for epoch, value in enumerate(values, start=1):
                run.log_metrics({f"{stage}.{key}": value}, step=epoch)


def confusion_figure(matrix, classes: list[str]):
    """A matplotlib figure of a confusion matrix (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(1.2 + 0.55 * len(classes), 1 + 0.5 * len(classes)))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(classes)), classes, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axis.text(j, i, str(value), ha="center", va="center", fontsize=7,
                      color="white" if value > top / 2 else "black")
    figure.tight_layout()
    return figure


def log_card_and_plots(run: Run, card: dict, curves_png: Path | None, confusion: tuple | None) -> None:
    """The model card, the curves picture and the confusion matrix as artifacts of ``run``."""
    from matplotlib import pyplot as plt

    run.log_json(card, "card.json")
    if curves_png and Path(curves_png).is_file():
        run.log_file(Path(curves_png))
    if confusion:
        figure = confusion_figure(*confusion)
        run.log_figure(figure, "confusion_matrix.png")
        plt.close(figure)
