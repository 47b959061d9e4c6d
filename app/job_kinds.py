"""Kinds of background job besides retraining a labelling project: each runs `riim` commands as stages.

An area of the app (time series, the CNN lab…) registers a :class:`JobKind` at import time. A job of that
kind is started with ``POST /api/v1/jobs {"kind": name, "options": {...}}`` or, from the area's own
endpoint, :func:`app.jobs.start_kind`. The job driver (``python -m cli.job_driver``) runs the stages in
order as child processes of the job's process group, so progress, cancel, logs and crash detection are
the same as for retraining. Placeholders in a stage's arguments are filled when the job starts:

    {dir}         the job's folder            {progress}   this stage's progress file (training/progress.py)
    {result}      the job's result file       {models_dir} the registry the app serves

A stage that exits with a non-zero code fails the job; after the last stage the result file (JSON, if the
commands wrote one) becomes the job's ``result`` and a ``version`` in the last progress file its version.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.errors import ApiError

RETRAIN = "retrain"  # the labelling project's retraining (app/jobs.py), not a registered kind
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class JobKind:
    name: str
    title: dict  # {"es": ..., "en": ...}
    parse: Callable[[dict], dict]  # the request's options → clean options (raises ApiError 400)
    model: Callable[[dict], str]  # the registry model the job publishes to (shown as the job's project)
    stages: Callable[[dict], list[tuple[str, list[str]]]]  # [(stage, argv of `riim`)], run in order


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    if kind.name == RETRAIN or kind.name in KINDS:
        raise ValueError(f"job kind {kind.name!r} is already defined")
    KINDS[kind.name] = kind
    return kind


def get(name) -> JobKind:
    if not isinstance(name, str) or name not in KINDS:
        raise ApiError(400, "unknown_job_kind", value=str(name)[:80], kinds=", ".join([RETRAIN, *sorted(KINDS)]))
    return KINDS[name]


def progress_file(directory: Path, stage: str) -> Path:
    return directory / f"progress-{stage}.json"


def plan(kind: JobKind, options: dict, directory: Path, models_dir: Path) -> list[dict]:
    """The stages of a job with their arguments filled in: ``[{"name", "argv", "progress"}]``."""
    stages = []
    for name, argv in kind.stages(options):
        values = {"dir": str(directory), "progress": str(progress_file(directory, name)),
                  "result": str(directory / RESULT_FILE), "models_dir": str(models_dir)}
        filled = []
        for arg in argv:
            for key, value in values.items():
                arg = arg.replace("{" + key + "}", value)
            filled.append(arg)
        stages.append({"name": name, "argv": filled, "progress": values["progress"]})
    return stages
