"""The ``riim`` command line. Serving commands never import TensorFlow; ``models default`` does (lazily)."""
from __future__ import annotations

import json
import sys
import time

import click

from app.auth import users_cli
from app.storage import uploads_cli
from export.cli import export as export_command
from export.cli import ERRORS as EXPORT_ERRORS
from export.cli import export_ref, parity_table
from models.card import CardError
from models.card import validate as validate_card
from models.registry import DEFAULT_ROOT, Registry, RegistryError
from training import cli as training_cli

registry_option = click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True,
                               envvar="RIIM_MODELS_DIR", help="Model registry folder.")


@click.group()
def main():
    """RIIM — Reconocimiento Inteligente de Imágenes / Intelligent Image Recognition."""


@main.group()
def models():
    """Model registry: list, show, promote, rollback, build the default model."""


def _fail(error: Exception):
    raise click.ClickException(str(error))


def _calibrated(card: dict) -> bool:
    """Whether the card holds a calibration valid under today's schema (an older RIIM's is redone)."""
    if "anomaly" not in card:
        return False
    try:
        validate_card(card)
    except CardError:
        return False
    return True


@models.command("list")
@registry_option
def list_models(models_dir):
    """Every model with its versions; * marks the current one."""
    registry = Registry(models_dir)
    names = registry.models()
    if not names:
        click.echo(f"no models in {models_dir} — run `riim models default`")
    for name in names:
        current = registry.current(name)
        click.echo(f"{name}: " + " ".join(f"{v}*" if v == current else v for v in registry.versions(name)))


@models.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the whole card as JSON.")
@registry_option
def show(ref, as_json, models_dir):
    """Describe NAME[:VERSION] (the current version by default)."""
    name, _, version = ref.partition(":")
    try:
        card = Registry(models_dir).card(name, version or None)
    except RegistryError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(card, indent=2, ensure_ascii=False))
        return
    click.echo(f"{card['name']}:{card['version']}  created {card['created']}  task {card['task']}")
    click.echo(f"  {card.get('description', {}).get('en', '')}")
    click.echo(f"  labels: {', '.join(card['labels'])}; unknown: {card['unknown_policy']['rule']} "
               f"{card['unknown_policy']['threshold']}")
    backbone = card["backbone"]
    click.echo(f"  backbone: {backbone['name']} ({backbone['source']}, {backbone['license']}), "
               f"{backbone['parameters']:,} parameters")
    spec = card["input"]
    click.echo(f"  input: {spec['size']}x{spec['size']} {spec['color']}, centre crop {spec['crop_fraction']}, "
               f"(x - {spec['mean']}) / {spec['std']}")
    click.echo("  files:")
    for fmt, entry in card["files"].items():
        click.echo(f"    {fmt:<16} {entry['path']:<28} {entry['bytes'] / 2**20:8.2f} MiB  {entry['sha256'][:12]}")
    for check, result in card.get("parity", {}).items():
        click.echo(parity_table(result) if check == "report" else f"  parity {check}: {json.dumps(result)}")


@models.command("promote")
@click.argument("ref")
@registry_option
def promote(ref, models_dir):
    """Make NAME:VERSION the current version (served without restart)."""
    name, _, version = ref.partition(":")
    if not version:
        _fail(click.UsageError("give NAME:VERSION, e.g. animals:v2"))
    try:
        Registry(models_dir).promote(name, version)
    except RegistryError as error:
        _fail(error)
    click.echo(f"{name}: current version is now {version}")


@models.command("rollback")
@click.argument("name")
@registry_option
def rollback(name, models_dir):
    """Return NAME to the version that was current before."""
    try:
        version = Registry(models_dir).rollback(name)
    except RegistryError as error:
        _fail(error)
    click.echo(f"{name}: rolled back to {version}")


@models.command("default")
@click.option("--force", is_flag=True, help="Build a new version even if one exists.")
@registry_option
def default(force, models_dir):
    """Build the embedded default model "animals" (cat / dog / unknown) from the ImageNet network."""
    from training import default_model, real_photos  # TensorFlow only if the model must be built

    registry = Registry(models_dir)
    started = time.perf_counter()
    try:
        if force:
            version, built = default_model.build(registry), True
        else:
            version, built = default_model.ensure(registry)
    except (RegistryError, CardError, real_photos.MissingDataError) as error:
        _fail(error)
    state = f"built in {time.perf_counter() - started:.1f} s" if built else "already built, reused"
    click.echo(f"{default_model.NAME}:{version} {state} ({registry.path(default_model.NAME, version)})")
    if "tfjs" not in registry.card(default_model.NAME, version)["files"]:  # the browser needs TF.js
        started = time.perf_counter()
        try:
            export_ref(f"{default_model.NAME}:{version}", models_dir, None, repeats=10)
        except EXPORT_ERRORS as error:
            _fail(error)
        click.echo(f"{default_model.NAME}:{version} exported (ONNX int8, TFLite, TF.js) in "
                   f"{time.perf_counter() - started:.1f} s")
    if not _calibrated(registry.card(default_model.NAME, version)):  # unknown/anomaly/network views need it
        from training import calibrate as calibration

        started = time.perf_counter()
        try:
            calibration.calibrate(registry, default_model.NAME, version, None, echo=click.echo)
        except (RegistryError, CardError, calibration.CalibrationError) as error:
            _fail(error)
        click.echo(f"{default_model.NAME}:{version} calibrated in {time.perf_counter() - started:.1f} s")


@main.command()
@click.argument("ref")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder the version was trained on (fine-tuned models; the default model uses real photos).")
@click.option("--copies", default=8, show_default=True, help="Augmented copies per photo (default model).")
@registry_option
def calibrate(ref, data_dir, copies, models_dir):
    """Fit the out-of-distribution and unusual-region detectors of NAME[:VERSION] and store them in it."""
    from training import calibrate as calibration  # scikit-learn and onnx: the train extra

    name, _, version = ref.partition(":")
    try:
        anomaly = calibration.calibrate(Registry(models_dir), name, version or None, data_dir, copies=copies,
                                        echo=click.echo)
    except (RegistryError, CardError, calibration.CalibrationError) as error:
        _fail(error)
    click.echo(f"{name}: unknown when {anomaly['ood']['score']} > {anomaly['ood']['threshold']:.4g}; "
               f"OOD AUROC {anomaly['ood']['auroc']}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def serve(host, port):
    """Serve the web app and API with the development server (use `make serve` for gunicorn)."""
    from app import create_app

    create_app().run(host=host, port=port, debug=False)  # never the interactive debugger


main.add_command(users_cli)
main.add_command(export_command)
main.add_command(uploads_cli)
for _command in training_cli.COMMANDS:  # train, augment-preview, data import (TensorFlow loaded lazily)
    main.add_command(_command)


if __name__ == "__main__":
    sys.exit(main())
