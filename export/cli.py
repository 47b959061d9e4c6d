"""``riim export NAME[:VERSION]`` and ``riim calibrate NAME[:VERSION]``: the export side's commands."""
from __future__ import annotations

import time

import click

from export.browser import BrowserError
from models.card import parity_table
from models.registry import DEFAULT_ROOT, Registry, RegistryError

ERRORS = (RegistryError, ValueError, BrowserError)  # what `riim export` reports as a message, not a traceback
def export_ref(ref: str, models_dir: str, data_dir: str | None, repeats: int, formats=None) -> dict:
    """Export NAME[:VERSION]; returns the new card (raises one of :data:`ERRORS` on bad input)."""
    from export.exporter import export_version  # TensorFlow only when something is exported

    name, _, version = ref.partition(":")
    return export_version(Registry(models_dir), name, version or None, data_dir, repeats,
                          log=lambda message: click.echo(message, err=True), formats=formats)


@click.command("export")
@click.argument("ref")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="The image folder the version was trained on: its test split joins the parity images and "
                   "its training split calibrates int8.")
@click.option("--repeats", default=30, show_default=True, type=click.IntRange(3, 1000),
              help="Timed single-image runs per format and runtime setting.")
@click.option("--formats", help="Only these formats, comma-separated (e.g. onnx_int8,tfjs); default: all. "
                                "Formats missing now can be added later by exporting again.")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR",
              help="Model registry folder.")
def export(ref, data_dir, repeats, formats, models_dir):
    """Add ONNX int8, TFLite (fp32, dynamic, int8) and TF.js (float16, uint8) to NAME[:VERSION], with a
    parity report against Keras in its card."""
    started = time.perf_counter()
    try:
        card = export_ref(ref, models_dir, data_dir, repeats, formats.split(",") if formats else None)
    except ERRORS as error:
        raise click.ClickException(str(error)) from None
    click.echo(parity_table(card["parity"]["report"]))
    click.echo(f"{card['name']}:{card['version']} exported in {time.perf_counter() - started:.0f} s")


@click.command()
@click.argument("ref")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder the version was trained on (fine-tuned models; the default model uses real photos).")
@click.option("--copies", default=8, show_default=True, help="Augmented copies per photo (default model).")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR",
              help="Model registry folder.")
def calibrate(ref, data_dir, copies, models_dir):
    """Fit the out-of-distribution and unusual-region detectors of NAME[:VERSION] (on its exported ONNX
    model) and add them to it."""
    from export import calibrate as calibration  # scikit-learn and onnx: the train extra
    from models.card import CardError

    name, _, version = ref.partition(":")
    try:
        anomaly = calibration.calibrate(Registry(models_dir), name, version or None, data_dir, copies=copies,
                                        echo=click.echo)
    except (RegistryError, CardError, calibration.CalibrationError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{name}: unknown when {anomaly['ood']['score']} > {anomaly['ood']['threshold']:.4g}; "
               f"OOD AUROC {anomaly['ood']['auroc']}")


COMMANDS = (export, calibrate)
