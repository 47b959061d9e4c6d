"""``riim lab``: the CNN lab's commands (train from scratch → publish → ONNX/TF.js → promote, tracked in MLflow;
transforms strip; Optuna sweeps; transfer-learning comparison). They span training/ and export/, so they
live in cli/. Exit codes as in training/cli.py: 2 bad config, 3 unusable data, 4 data not installed,
1 the run failed (a NaN/inf loss, for instance: the ``failed`` alert says why).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import click
import yaml

from models import atomic
from models.registry import DEFAULT_ROOT, Registry
from training.cli import EXIT_CONFIG, EXIT_DATASET, EXIT_FAILED, EXIT_MISSING, exit_with

DEFAULT_NAME = "fashion-cnn"


def lab_config(config_path, settings: tuple[str, ...], base: dict | None = None):
    """The config file (or defaults), then ``--set section.key=value`` changes (values read as YAML)."""
    from models import lab_config
    from models.training_config import ConfigError

    try:
        data = (yaml.safe_load(Path(config_path).read_text()) or {}) if config_path else {}
        data = lab_config.merge(base or {}, data)
        for item in settings:
            key, sep, value = item.partition("=")
            section, dot, field = key.partition(".")
            if not sep or not dot:
                raise ConfigError([f"--set {item}: write section.key=value, e.g. model.width=32"])
            data = lab_config.merge(data, {section: {field: _value(value)}})
        return lab_config.from_dict(data)
    except ConfigError as error:
        exit_with(EXIT_CONFIG, str(error))
    except (OSError, yaml.YAMLError) as error:
        exit_with(EXIT_CONFIG, f"{config_path}: {error}")


def _value(text: str):
    """A --set value read as YAML; numbers YAML 1.1 leaves as text (``1e12``) read as floats."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def load_data(source: str, config, progress=None):
    from training import data as folder_data
    from training import lab_data
    from training.real_photos import MissingDataError

    try:
        return lab_data.load(source, config.data, config.train.validation_fraction, config.seed)
    except folder_data.DatasetError as error:
        exit_with(EXIT_DATASET, str(error), progress)
    except MissingDataError as error:
        exit_with(EXIT_MISSING, str(error), progress)


def _set_lab_dir(context, parameter, value):
    if value:
        os.environ["RIIM_LAB_DIR"] = str(value)  # read by training.tracking.lab_dir()


def common(function):
    """Options shared by the training commands."""
    options = [
        click.option("--source", default="fashion-mnist", show_default=True,
                     help="fashion-mnist, cifar10:<folder of the CIFAR-10 python batches> or folder:<image folder>."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Lab config (YAML/JSON, models/lab_config.py); defaults for what it leaves out."),
        click.option("--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Change one setting, e.g. --set model.width=16 --set train.epochs=3 (repeatable)."),
        click.option("--progress-file", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--result-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="A JSON summary written at the end (background jobs store it)."),
        click.option("--webhook", envvar="RIIM_LAB_WEBHOOK", help="POST every alert as JSON to this URL."),
        click.option("--log-json", is_flag=True, help="JSON log lines on stderr instead of progress bars (jobs)."),
        click.option("--lab-dir", type=click.Path(file_okay=False), expose_value=False, is_eager=True,
                     callback=_set_lab_dir, help="Tracking store, alerts and sweeps (default instance/lab, "
                                                 "or $RIIM_LAB_DIR)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _logging(log_json: bool) -> None:
    if log_json:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


@click.group("lab")
def lab():
    """The CNN lab: train a small CNN from scratch, track runs, alerts, sweeps."""


def description(source: str, config) -> dict:
    m = config.model
    return {"es": f"CNN entrenada desde cero en {source}: {m.depth} bloques, {m.width} filtros al principio.",
            "en": f"CNN trained from scratch on {source}: {m.depth} blocks, {m.width} filters to start with."}


def train_and_publish(registry: Registry, name: str, source: str, config, progress, webhook=None,
                      export: bool = True, promote=None, tags: dict | None = None, prune=None) -> dict:
    """One tracked run: train, then (unless pruned) publish, export and promote; returns a summary.
    Raises :class:`training.lab_cnn.TrainingFailed` after the ``failed`` alert when the run breaks down."""
    from export import lab_export
    from training import alerts, lab_cnn, tracking

    data = load_data(source, config, progress)
    params = {**config.flat(), "data.source": source}
    with tracking.start("lab", f"{name}-{time.strftime('%m%d-%H%M%S')}", params,
                        {"riim.kind": "lab-train", "riim.model": name, "riim.source": source, **(tags or {})}) as run:
        notifier = alerts.Notifier(tracking.lab_dir() / alerts.FILE, {"run_id": run.id, "run_name": run.name,
                                                                      "model": name}, webhook)
        try:
            result = lab_cnn.train(data, config, progress, notifier, run, prune)
        except lab_cnn.TrainingFailed as error:
            notifier.send("failed", {"error": str(error)})
            run.log_json(notifier.sent, "alerts.json")
            raise
        summary = {"run_id": run.id, "run_name": run.name, "pruned": result.pruned, "parameters": result.parameters,
                   "seconds": result.seconds, "epochs": len(result.history.get("loss", [])), "data": result.data,
                   "best_val_accuracy": max(result.history.get("val_accuracy", [0.0]))}
        run.log_metrics({"parameters": result.parameters, "train_seconds": result.seconds["train"]})
        if result.pruned:
            run.set_tags({"riim.pruned": "true"})
            return summary
        test = result.metrics["test"]
        run.log_metrics({"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"]})
        summary["test_accuracy"] = test["accuracy"]
        progress.stage("publish")
        version = lab_cnn.publish(registry, name, result, description(data.source, config), data.x_test[0])
        if export:
            progress.stage("export")
            summary["parity"] = lab_export.export_lab(registry, name, version, result.model, data.x_test[:64])
            if promote or (promote is None and registry.current(name) is None):
                registry.promote(name, version)
        card = registry.card(name, version)
        run.set_tags({"riim.version": version})
        curves = registry.path(name, version) / card["files"]["curves"]["path"] if "curves" in card["files"] else None
        confusion = (test["confusion"]["matrix"], test["confusion"]["labels"])
        tracking.log_card_and_plots(run, card, curves, confusion)
        notifier.send("finished", {"test_accuracy": test["accuracy"], "version": version})
        run.log_json(notifier.sent, "alerts.json")
        return {**summary, "version": version, "model": name}


@lab.command("train")
@common
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Model name in the registry.")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR")
@click.option("--sweep", "sweep_name", help="Retrain the best trial of this sweep (its parameters, full data).")
@click.option("--export/--no-export", default=True, show_default=True, help="Add ONNX and TF.js after publishing.")
@click.option("--promote/--no-promote", default=None, help="Make it current (default: only the first version).")
def train(source, config_path, settings, progress_file, result_file, webhook, log_json, name, models_dir,
          sweep_name, export, promote):
    """Train the CNN from scratch on SOURCE, publish it as a new version of NAME (tracked in MLflow)."""
    from training import lab_cnn
    from training.progress import Progress

    _logging(log_json)
    base = {}
    if sweep_name:
        from training import sweep

        try:
            base = sweep.best_config(sweep_name)
        except LookupError as error:
            exit_with(EXIT_CONFIG, str(error))
    config = lab_config(config_path, settings, base)
    progress = Progress(progress_file, bars=not log_json)
    tags = {"riim.retrain_of": sweep_name} if sweep_name else None
    try:
        summary = train_and_publish(Registry(models_dir), name, source, config, progress, webhook, export, promote,
                                    tags)
    except lab_cnn.TrainingFailed as error:
        exit_with(EXIT_FAILED, str(error), progress)
    progress.finish(version=summary.get("version"), test_accuracy=summary.get("test_accuracy"))
    if result_file:
        atomic.write_json(result_file, summary)
    click.echo(f"{name}:{summary['version']} published; test accuracy {summary['test_accuracy']:.4f}, "
               f"{summary['parameters']:,} parameters, {summary['epochs']} epochs, "
               f"{summary['seconds']['train']:.0f} s training (MLflow run {summary['run_name']})")


@lab.command("transforms")
@click.option("--source", default="fashion-mnist", show_default=True)
@click.option("--index", default=0, show_default=True, help="Which test image to show.")
@click.option("--augment", "strength", default=1.0, show_default=True, help="Augmentation strength shown.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the strip as a PNG.")
def transforms_command(source, index, strength, out):
    """Show one image through every step of the transform pipeline (fitted on the training split)."""
    import numpy as np
    from PIL import Image

    from models import transforms as T
    from training import lab_cnn

    config = lab_config(None, (f"augment.strength={strength}",))
    data = load_data(source, config)
    pipeline = lab_cnn.build_pipeline(data)
    image = data.x_test[index]
    augment = lab_cnn.augmentation(config.augment, config.seed)
    steps = pipeline.strip(image)
    if augment is not None:  # training only: shown after the input, before the serving steps
        steps.insert(1, ("augment", {"strength": strength}, augment(image=image)["image"].reshape(image.shape)))
    for name, params, values in steps:
        click.echo(f"{name:10s} {values.shape!s:14s} {values.dtype!s:8s} min {float(values.min()):8.3f} "
                   f"max {float(values.max()):8.3f} mean {float(values.mean()):8.3f}  {json.dumps(params)}")
    click.echo(f"label: {data.classes[data.y_test[index]]}")
    if out:
        size = 112
        tiles = [np.asarray(Image.fromarray(T.to_display(v).squeeze(-1) if v.shape[-1] == 1 else T.to_display(v))
                            .convert("RGB").resize((size, size), Image.Resampling.NEAREST)) for _, _, v in steps]
        Image.fromarray(np.concatenate(tiles, axis=1)).save(out)
        click.echo(f"{out}: {len(tiles)} steps, {size * len(tiles)}×{size}")


@lab.command("sweep")
@common
@click.option("--name", "sweep_name", default="sweep", show_default=True, help="Sweep (Optuna study) name.")
@click.option("--trials", default=20, show_default=True, help="Trials to run (more are added to an existing sweep).")
def sweep_command(source, config_path, settings, progress_file, result_file, webhook, log_json, sweep_name, trials):
    """Optuna sweep (TPE + median pruning) over learning rate, batch size, dropout, width and augmentation;
    trial 0 is the default config. Retrain the best one with: riim lab train --sweep NAME."""
    from training import sweep
    from training.progress import Progress

    _logging(log_json)
    config = lab_config(config_path, settings)
    progress = Progress(progress_file, bars=not log_json)
    load_data(source, config, progress)  # a bad source fails here, with its exit code
    summary = sweep.run(sweep_name, trials, source, config.to_dict(), progress, webhook, config.seed)
    counts, best, default = summary["counts"], summary["best"], summary["default"]
    progress.finish(best=best and best["value"])
    if result_file:
        atomic.write_json(result_file, {k: summary[k] for k in ("name", "counts", "best", "default", "importances",
                                                                 "wall_seconds", "data")})
    click.echo(f"sweep {sweep_name}: {len(summary['trials'])} trials ({counts['complete']} complete, "
               f"{counts['pruned']} pruned, {counts['fail']} failed) in {summary['wall_seconds']:.0f} s")
    if best:
        click.echo(f"best trial {best['number']}: validation accuracy {best['value']:.4f} "
                   f"(test {best['test_accuracy']:.4f}) {json.dumps(best['params'])}")
    if default and default["value"] is not None:
        click.echo(f"default (trial 0): validation accuracy {default['value']:.4f} (test {default['test_accuracy']:.4f})")
    click.echo("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["importances"].items()))


@lab.command("transfer")
@common
@click.option("--input-size", default=64, show_default=True, help="Side the backbone sees (64-224).")
@click.option("--against", default=DEFAULT_NAME, show_default=True,
              help="Registry model (from scratch) to compare with: its current version's card.")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR")
def transfer_command(source, config_path, settings, progress_file, result_file, webhook, log_json, input_size,
                     against, models_dir):
    """Transfer learning (frozen pretrained EfficientNet-Lite0 + new head) on the same split as the CNN;
    prints both side by side (accuracy, time, parameters). Tracked in MLflow (riim.kind lab-transfer)."""
    from training import alerts, lab_transfer, tracking
    from training.progress import Progress

    _logging(log_json)
    config = lab_config(config_path, settings)
    progress = Progress(progress_file, bars=not log_json)
    data = load_data(source, config, progress)
    params = {**config.flat(), "data.source": source, "transfer.input_size": input_size}
    with tracking.start("lab", f"transfer-{time.strftime('%m%d-%H%M%S')}", params,
                        {"riim.kind": "lab-transfer", "riim.source": source}) as run:
        notifier = alerts.Notifier(tracking.lab_dir() / alerts.FILE, {"run_id": run.id, "run_name": run.name}, webhook)
        result = lab_transfer.train(data, config, input_size, progress, notifier, run)
        run.log_metrics({"test_accuracy": result["test"]["accuracy"], "parameters": result["parameters"],
                         "train_seconds": result["seconds"]["total"]})
        run.log_json({k: v for k, v in result.items() if k != "history"}, "transfer.json")
    rows = [("transfer (frozen EfficientNet-Lite0 + head)", result["test"]["accuracy"], result["parameters"],
             result["seconds"]["total"], result["test"]["images"])]
    registry = Registry(models_dir)
    try:
        card = registry.card(against)
        rows.insert(0, (f"from scratch ({against}:{card['version']})", card["metrics"]["test"]["accuracy"],
                        card["architecture"]["parameters"], card["training"]["seconds"]["total"],
                        card["metrics"]["test"]["images"]))
    except (LookupError, KeyError):
        click.echo(f"(no from-scratch model {against!r} to compare with: train one with riim lab train)")
    progress.finish(test_accuracy=result["test"]["accuracy"])
    comparison = [{"model": r[0], "test_accuracy": r[1], "parameters": r[2], "seconds": r[3], "test_images": r[4]}
                  for r in rows]
    if result_file:
        atomic.write_json(result_file, {"run_id": run.id, "comparison": comparison, "data": data.sizes()})
    click.echo(f"data: {source}, {json.dumps(data.sizes())}")
    click.echo(f"{'model':48s} {'test acc':>8s} {'parameters':>12s} {'seconds':>8s} {'test images':>11s}")
    for row in rows:
        click.echo(f"{row[0]:48s} {row[1]:8.4f} {row[2]:12,d} {row[3]:8.1f} {row[4]:11d}")


COMMANDS = (lab,)
