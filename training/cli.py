"""``riim train``, ``riim augment-preview`` and ``riim data import``: the training commands.

TensorFlow is imported inside the commands, so ``riim --help`` stays fast. Exit codes of ``riim train``
(documented in docs/training.md): 0 published, 1 unexpected failure, 2 bad command line or config,
3 unusable dataset, 4 real data or weights not installed.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from models.registry import DEFAULT_ROOT, Registry

EXIT_FAILED, EXIT_CONFIG, EXIT_DATASET, EXIT_MISSING = 1, 2, 3, 4


def _exit(code: int, message: str, progress=None):
    if progress is not None:
        progress.fail(message)
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _config(path):
    from training import config

    try:
        return config.load(path)
    except config.ConfigError as error:
        _exit(EXIT_CONFIG, str(error))


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
def train(data_dir, name, config_path, models_dir, work_dir, progress_file, promote, log_json):
    """Fine-tune EfficientNet-Lite0 on DATA and publish a new version of NAME."""
    settings = _config(config_path)
    from models.card import CardError
    from models.registry import RegistryError
    from training import data, finetune, real_photos
    from training.progress import Progress

    if log_json:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    progress = Progress(progress_file, bars=not log_json)
    try:
        version = finetune.train_and_publish(Registry(models_dir), data_dir, name, settings, work_dir, progress,
                                             promote)
    except data.DatasetError as error:
        _exit(EXIT_DATASET, str(error), progress)
    except (real_photos.MissingDataError, FileNotFoundError) as error:
        _exit(EXIT_MISSING, str(error), progress)
    except (RegistryError, CardError) as error:
        _exit(EXIT_FAILED, str(error), progress)
    except KeyboardInterrupt:
        _exit(EXIT_FAILED, "interrupted" + (f"; resume with --work-dir {work_dir}" if work_dir else ""), progress)
    card = Registry(models_dir).card(name, version)
    metrics = card["metrics"]
    click.echo(f"{name}:{version} published"
               + (f"; test accuracy {metrics['test']['accuracy']:.3f}, macro-F1 {metrics['test']['macro_f1']:.3f}"
                  if "test" in metrics else "; no test split")
               + (f", verdict {metrics['diagnosis']['verdict']} ({metrics['diagnosis']['reason']})"
                  if "diagnosis" in metrics else ""))


@click.command("augment-preview")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images", default=4, show_default=True, help="Rows: images taken from the folder.")
@click.option("--copies", default=6, show_default=True, help="Augmented versions next to each original.")
def augment_preview(data_dir, out, config_path, images, copies):
    """Write a grid: each row an original image, then augmented copies as the network sees them."""
    settings = _config(config_path)
    from training import augment, backbone, data

    try:
        dataset = data.scan(data_dir, settings.data.min_per_class)
    except data.DatasetError as error:
        _exit(EXIT_DATASET, str(error))
    step = max(1, len(dataset.samples) // images)  # spread the rows over the classes
    pixels = data.load_pixels(dataset, backbone.input_spec(settings.input_size),
                              list(range(0, len(dataset.samples), step))[:images])
    grid = augment.preview(pixels, settings.augment, copies, settings.seed)
    grid.save(out)
    click.echo(f"{out}: {len(pixels)} images × (1 original + {copies} augmented), {grid.width}×{grid.height}")


@click.group("data")
def data_group():
    """Real bundled data as image folders to train on."""


@data_group.command("import")
@click.argument("source", type=click.Choice(["fashion-mnist", "cat-dog", "ood"]))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--per-class", default=100, show_default=True, help="Fashion-MNIST images per class.")
@click.option("--classes", help="Fashion-MNIST classes, comma-separated (default: all 10).")
@click.option("--split", "source_split", type=click.Choice(["train", "test"]), default="train", show_default=True)
def import_data(source, dest, per_class, classes, source_split):
    """Write SOURCE into DEST (a new folder), one sub-folder per class."""
    from training import importers, real_photos

    try:
        if source == "fashion-mnist":
            importers.fashion_mnist(dest, per_class, classes.split(",") if classes else None, source_split)
        else:
            {"cat-dog": importers.cat_dog, "ood": importers.ood}[source](dest)
    except real_photos.MissingDataError as error:
        _exit(EXIT_MISSING, str(error))
    except (FileExistsError, ValueError) as error:
        _exit(EXIT_CONFIG, str(error))
    counts = {p.name: sum(1 for _ in p.iterdir()) for p in sorted(Path(dest).iterdir())}
    click.echo(f"{dest}: {json.dumps(counts)}")


COMMANDS = (train, augment_preview, data_group)
