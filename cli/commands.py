"""Commands whose work spans layers: ``riim train`` (train → publish → ONNX → promote) and
``riim models default`` (build → export → calibrate → promote)."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from app.cli import models, registry_option
from cli import pipeline
from models.card import CardError
from models.registry import DEFAULT_ROOT, Registry, RegistryError
from training import cli as training_cli


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Image folder: one sub-folder of images per class.")
@click.option("--name", required=True, help="Model name in the registry (a-z, 0-9, '-', '_').")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Training config (YAML or JSON); defaults for everything it leaves out.")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR",
              help="Model registry folder.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Checkpoints and cached features; run again with the same folder to resume.")
@click.option("--progress-file", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON file rewritten atomically with stage, epoch, loss, accuracy and ETA.")
@click.option("--promote/--no-promote", default=None,
              help="Make the new version current (default: only if the model has no current version).")
@click.option("--log-json", is_flag=True, help="JSON log lines on stderr instead of progress bars (for jobs).")
@click.option("--cluster", help="Train with other workers: every worker's host:port, comma-separated, the same "
                                "list on each (docs/deploy.md); worker 0 publishes.")
@click.option("--task-index", type=int, help="This worker's position in --cluster (0 = the chief).")
def train(data_dir, name, config_path, models_dir, work_dir, progress_file, promote, log_json, cluster, task_index):
    """Fine-tune EfficientNet-Lite0 on DATA and publish a new version of NAME (Keras + ONNX)."""
    settings = training_cli.load_config(config_path, cluster=cluster, task_index=task_index)
    from training import data, distribute, real_photos
    from training.progress import Progress

    if log_json:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    progress = Progress(progress_file, bars=not log_json)
    try:
        version = pipeline.train(Registry(models_dir), data_dir, name, settings, work_dir, progress, promote)
    except data.DatasetError as error:
        training_cli.exit_with(training_cli.EXIT_DATASET, str(error), progress)
    except (real_photos.MissingDataError, FileNotFoundError) as error:
        training_cli.exit_with(training_cli.EXIT_MISSING, str(error), progress)
    except (RegistryError, CardError, distribute.ClusterError) as error:
        training_cli.exit_with(training_cli.EXIT_FAILED, str(error), progress)
    except KeyboardInterrupt:
        training_cli.exit_with(training_cli.EXIT_FAILED, "interrupted" + (f"; resume with --work-dir {work_dir}" if work_dir else ""), progress)
    if version is None:
        click.echo("this worker is done; the chief (worker 0) publishes the model")
        return
    card = Registry(models_dir).card(name, version)
    metrics = card["metrics"]
    click.echo(f"{name}:{version} published"
               + (f"; test accuracy {metrics['test']['accuracy']:.3f}, macro-F1 {metrics['test']['macro_f1']:.3f}"
                  if "test" in metrics else "; no test split")
               + (f", verdict {metrics['diagnosis']['verdict']} ({metrics['diagnosis']['reason']})"
                  if "diagnosis" in metrics else ""))


@models.command("default")
@click.option("--force", is_flag=True, help="Build a new version even if one exists.")
@registry_option
def default(force, models_dir):
    """Build the embedded default model "animals" (cat / dog / unknown) from the ImageNet network, export
    it (ONNX, TFLite, TF.js) and calibrate its anomaly detectors; reuse it when it exists."""
    from export.browser import BrowserError
    from export.calibrate import CalibrationError
    from training import default_model, real_photos  # TensorFlow only if the model must be built

    registry = Registry(models_dir)
    started = time.perf_counter()
    try:
        version = None if force else default_model.current(registry)
        if version is None:
            version = pipeline.build_default(registry, echo=click.echo)
            state = "built, exported and calibrated"
        else:
            state = ", ".join(pipeline.complete_default(registry, version, echo=click.echo)) or "already built, reused"
    except (RegistryError, CardError, real_photos.MissingDataError, BrowserError, CalibrationError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{default_model.NAME}:{version} {state} in {time.perf_counter() - started:.1f} s "
               f"({registry.path(default_model.NAME, version)})")


COMMANDS = (train,)
