"""Hyperparameter sweeps of the CNN lab with Optuna: TPE sampler, median pruner, SQLite storage.

A sweep is an Optuna study in ``<lab dir>/sweeps/optuna.db`` over learning rate, batch size, dropout,
width and augmentation strength (:data:`SPACE`). Trial 0 is always the default configuration (enqueued),
so the sweep's best can be compared with the default on the same data. Every trial is a tracked MLflow run
(tag ``riim.sweep``); it reports its validation accuracy after each epoch and the median pruner stops it
early when it is below the median of earlier trials at that epoch. The objective is the best validation
accuracy — the test split is measured for the record, never used to choose.

After every trial the summary ``<lab dir>/sweeps/<name>.json`` is rewritten (atomically): the trials with
their state, value, parameters and per-epoch values, the best trial, and the parameter importances
computed by Optuna — what the lab page draws (history, importances, parallel coordinates).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import optuna

from models import atomic, lab_config
from training import alerts as alert_rules
from training import lab_cnn, lab_data, tracking
from training.progress import Progress

DB_FILE = "optuna.db"
# name → (config section, key, kind, low/choices, high)
SPACE = {
    "learning_rate": ("train", "learning_rate", "log", 1e-4, 1e-2),
    "batch_size": ("train", "batch_size", "choice", [32, 64, 128, 256], None),
    "dropout": ("model", "dropout", "float", 0.0, 0.5),
    "width": ("model", "width", "choice", [8, 16, 32, 48], None),
    "augment_strength": ("augment", "strength", "float", 0.0, 0.8),
}


def sweeps_dir() -> Path:
    return tracking.lab_dir() / "sweeps"


def storage_uri() -> str:
    sweeps_dir().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(sweeps_dir() / DB_FILE).resolve()}"


def summary_path(name: str) -> Path:
    return sweeps_dir() / f"{name}.json"


def suggest(trial: optuna.Trial) -> dict:
    changes: dict = {}
    for name, (section, key, kind, low, high) in SPACE.items():
        if kind == "log":
            value = trial.suggest_float(name, low, high, log=True)
        elif kind == "float":
            value = trial.suggest_float(name, low, high)
        else:
            value = trial.suggest_categorical(name, low)
        changes.setdefault(section, {})[key] = value
    return changes


def default_params(config: lab_config.LabConfig) -> dict:
    """The configuration's own values of the searched parameters (trial 0)."""
    values = config.to_dict()
    return {name: values[section][key] for name, (section, key, *_rest) in SPACE.items()}


def summarize(study: optuna.Study, started: float, data: dict) -> dict:
    trials = []
    for trial in study.trials:
        trials.append({"number": trial.number, "state": trial.state.name.lower(), "value": trial.value,
                       "params": trial.params, "intermediate": [[step, value] for step, value in
                                                                sorted(trial.intermediate_values.items())],
                       "seconds": round(trial.duration.total_seconds(), 1) if trial.duration else None,
                       "test_accuracy": trial.user_attrs.get("test_accuracy"),
                       "run_id": trial.user_attrs.get("run_id")})
    complete = [t for t in trials if t["state"] == "complete"]
    importances = {}
    if len(complete) >= 3:
        try:
            importances = {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError) as error:  # too few distinct values: shown as unavailable
            logging.getLogger("riim.lab").warning(f"importances unavailable: {error}")
    best = max(complete, key=lambda t: t["value"]) if complete else None
    default = next((t for t in trials if t["number"] == 0), None)
    return {"name": study.study_name, "direction": "maximize", "objective": "best validation accuracy",
            "sampler": "TPE", "pruner": "median", "space": {k: {"kind": v[2], "low": v[3], "high": v[4]}
                                                            for k, v in SPACE.items()},
            "data": data, "trials": trials, "best": best, "default": default, "importances": importances,
            "counts": {state: sum(1 for t in trials if t["state"] == state)
                       for state in ("complete", "pruned", "fail", "running")},
            "wall_seconds": round(time.monotonic() - started, 1)}


def run(name: str, trials: int, source: str, base: dict, progress: Progress | None = None,
        webhook: str | None = None, seed: int = 0) -> dict:
    """Run ``trials`` more trials of the sweep ``name`` (created or continued); returns the summary."""
    progress = progress or Progress(bars=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = lab_config.from_dict(base)
    study = optuna.create_study(study_name=name, storage=storage_uri(), direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2))
    if not study.trials:
        study.enqueue_trial(default_params(config))
    progress.stage("data")
    data = lab_data.load(source, config.data, config.train.validation_fraction, config.seed)
    sizes = {"source": data.source, **data.sizes()}
    started = time.monotonic()
    progress.stage("trials", trials, unit="trial")

    def objective(trial: optuna.Trial) -> float:
        settings = lab_config.merge(base, suggest(trial))
        trial.set_user_attr("config", settings)
        trial_config = lab_config.from_dict(settings)
        params = {**trial_config.flat(), "data.source": source}
        tags = {"riim.kind": "lab-sweep-trial", "riim.sweep": name, "riim.trial": trial.number}
        with tracking.start("lab", f"{name}-trial{trial.number}", params, tags) as tracked:
            trial.set_user_attr("run_id", tracked.id)
            notifier = alert_rules.Notifier(tracking.lab_dir() / alert_rules.FILE,
                                            {"run_id": tracked.id, "run_name": tracked.name, "sweep": name}, webhook)

            def prune(epoch: int, logs: dict) -> bool:
                trial.report(logs.get("val_accuracy", 0.0), epoch)
                return trial.should_prune()

            result = lab_cnn.train(data, trial_config, Progress(bars=False), notifier, tracked, prune)
            if result.pruned:  # the run ends FINISHED (it did what it was asked), tagged as pruned
                tracked.set_tags({"riim.pruned": "true"})
            else:
                tracked.log_metrics({"test_accuracy": result.metrics["test"]["accuracy"]})
                trial.set_user_attr("test_accuracy", result.metrics["test"]["accuracy"])
        if result.pruned:
            raise optuna.TrialPruned()
        return max(result.history["val_accuracy"])

    def after(study_, trial_):
        done = sum(1 for t in study_.trials if t.state.is_finished()) - already
        summary = summarize(study_, started, sizes)
        atomic.write_json(summary_path(name), summary)
        progress.step(done, trials, **({"best": summary["best"]["value"]} if summary["best"] else {}))

    already = sum(1 for t in study.trials if t.state.is_finished())
    study.optimize(objective, n_trials=trials, callbacks=[after], catch=(lab_cnn.TrainingFailed,))
    summary = summarize(study, started, sizes)
    atomic.write_json(summary_path(name), summary)
    return summary


def best_config(name: str) -> dict:
    """The full configuration of the sweep's best trial, with the data limits removed (retrain on all data)."""
    try:
        study = optuna.load_study(study_name=name, storage=storage_uri())
        best = study.best_trial
    except (KeyError, ValueError) as error:
        raise LookupError(f"sweep {name!r} has no finished trial ({error})") from None
    settings = json.loads(json.dumps(best.user_attrs["config"]))
    settings.pop("data", None)
    return settings
