"""``riim export NAME[:VERSION]`` and the parity table that ``riim models show`` prints."""
from __future__ import annotations

import time

import click

from export.browser import BrowserError
from models.registry import DEFAULT_ROOT, Registry, RegistryError

ERRORS = (RegistryError, ValueError, BrowserError)  # what `riim export` reports as a message, not a traceback
COLUMNS = ("format", "MiB", "top-1", "answer", "inet top-1", "max|Δp|", "mean|Δp|", "accuracy", "latency p50/p95 ms")


def parity_table(report: dict) -> str:
    """The card's ``parity.report`` as a fixed-width text table, one row per format."""
    rows = [COLUMNS]
    for fmt, row in report["formats"].items():
        inet = row.get("imagenet_top1_agreement")
        rows.append((fmt, f"{row['bytes'] / 2**20:.2f}", f"{row['top1_agreement']:.3f}", f"{row['answer_agreement']:.3f}",
                     "-" if inet is None else f"{inet:.3f}", f"{row['max_abs_dp']:.2g}", f"{row['mean_abs_dp']:.2g}",
                     "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}",
                     "  ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in row["latency_ms"].items())))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    images = ", ".join(f"{k} {v}" for k, v in report["images"].items())
    lines = [f"parity vs {report['reference']} on '{report['output']}' ({images}; int8 calibrated on "
             f"{report['calibration']['images']} {report['calibration']['source']}):"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    return "\n".join(lines)


def export_ref(ref: str, models_dir: str, data_dir: str | None, repeats: int) -> dict:
    """Export NAME[:VERSION]; returns the new card (raises one of :data:`ERRORS` on bad input)."""
    from export.exporter import export_version  # TensorFlow only when something is exported

    name, _, version = ref.partition(":")
    return export_version(Registry(models_dir), name, version or None, data_dir, repeats,
                          log=lambda message: click.echo(message, err=True))


@click.command("export")
@click.argument("ref")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="The image folder the version was trained on: its test split joins the parity images and "
                   "its training split calibrates int8.")
@click.option("--repeats", default=30, show_default=True, type=click.IntRange(3, 1000),
              help="Timed single-image runs per format and runtime setting.")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR",
              help="Model registry folder.")
def export(ref, data_dir, repeats, models_dir):
    """Add ONNX int8, TFLite (fp32, dynamic, int8) and TF.js (float16, uint8) to NAME[:VERSION], with a
    parity report against Keras in its card."""
    started = time.perf_counter()
    try:
        card = export_ref(ref, models_dir, data_dir, repeats)
    except ERRORS as error:
        raise click.ClickException(str(error)) from None
    click.echo(parity_table(card["parity"]["report"]))
    click.echo(f"{card['name']}:{card['version']} exported in {time.perf_counter() - started:.0f} s")
