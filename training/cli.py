"""``riim augment-preview`` and ``riim data import``: the training side's commands (``riim train``, which
also exports, is composed in :mod:`cli.commands`).

TensorFlow is imported inside the commands, so ``riim --help`` stays fast. Exit codes (documented in
docs/training.md): 0 done, 1 unexpected failure, 2 bad command line or config, 3 unusable dataset, 4 real
data or weights not installed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

EXIT_FAILED, EXIT_CONFIG, EXIT_DATASET, EXIT_MISSING = 1, 2, 3, 4


def exit_with(code: int, message: str, progress=None):
    if progress is not None:
        progress.fail(message)
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def load_config(path, **distribute):
    """The validated config; ``cluster`` ("host:port,host:port") and ``task_index`` override its
    ``distribute`` section when given."""
    from models import training_config as config

    try:
        settings = config.load(path)
        overrides = {key: value for key, value in distribute.items() if value is not None}
        if overrides:
            if isinstance(overrides.get("cluster"), str):
                overrides["cluster"] = overrides["cluster"].split(",")
            settings = config.from_dict({**settings.to_dict(),
                                         "distribute": {**settings.to_dict()["distribute"], **overrides}})
        return settings
    except config.ConfigError as error:
        exit_with(EXIT_CONFIG, str(error))


@click.command("augment-preview")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images", default=4, show_default=True, help="Rows: images taken from the folder.")
@click.option("--copies", default=6, show_default=True, help="Augmented versions next to each original.")
def augment_preview(data_dir, out, config_path, images, copies):
    """Write a grid: each row an original image, then augmented copies as the network sees them."""
    settings = load_config(config_path)
    from training import augment, backbone, data

    try:
        dataset = data.scan(data_dir, settings.data.min_per_class)
    except data.DatasetError as error:
        exit_with(EXIT_DATASET, str(error))
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
@click.argument("source", type=click.Choice(["fashion-mnist", "cat-dog", "ood", "series", "mnist", "sklearn-digits"]))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--per-class", default=100, show_default=True, help="Fashion-MNIST images per class.")
@click.option("--classes", help="Fashion-MNIST classes, comma-separated (default: all 10).")
@click.option("--split", "source_split", type=click.Choice(["train", "test"]), default="train", show_default=True)
def import_data(source, dest, per_class, classes, source_split):
    """Write SOURCE into DEST (a new folder), one sub-folder per class (series: one folder of CSV files per
    real series — msft, msft-spread, stocks, co2, sunspots)."""
    from training import digits_data, importers, real_photos, series_data

    try:
        if source in ("mnist", "sklearn-digits"):  # every digit, one sub-folder per digit
            digits_data.write_folder(source, dest)
        elif source == "series":
            series_data.import_series(dest)
        elif source == "fashion-mnist":
            importers.fashion_mnist(dest, per_class, classes.split(",") if classes else None, source_split)
        else:
            {"cat-dog": importers.cat_dog, "ood": importers.ood}[source](dest)
    except (real_photos.MissingDataError, digits_data.MissingDigitsError) as error:
        exit_with(EXIT_MISSING, str(error))
    except (FileExistsError, ValueError) as error:
        exit_with(EXIT_CONFIG, str(error))
    counts = {p.name: sum(1 for _ in p.iterdir()) for p in sorted(Path(dest).iterdir())}
    click.echo(f"{dest}: {json.dumps(counts)}")


COMMANDS = (augment_preview, data_group)
