"""``riim digits train``: the source document's ``train_model.py`` inside RIIM — train the document's MLP
and a small CNN on the same MNIST split (``training/digits.py``), publish each as a registry version,
export ONNX + int8 ONNX + TF.js (``export/digits_export.py``), promote, and print the comparison."""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from models.registry import DEFAULT_ROOT, Registry

NAMES = {"mlp": "digits-mlp", "cnn": "digits-cnn"}


def latency_ms(path: Path, batch: np.ndarray, repeats: int = 200) -> dict:
    """ONNX Runtime p50/p95 of one digit per call (one thread, as a server worker per request)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    times = []
    for index in range(repeats + 10):
        started = time.perf_counter()
        session.run(["probabilities"], {"image": batch[index % len(batch)][None]})
        if index >= 10:  # warm-up
            times.append((time.perf_counter() - started) * 1e3)
    return {"p50": round(float(np.percentile(times, 50)), 3), "p95": round(float(np.percentile(times, 95)), 3)}


def train_and_publish(registry: Registry, kinds=("mlp", "cnn"), limit: int | None = None, epochs: int | None = None,
                      promote: bool = True, progress=None, names: dict | None = None, echo=print) -> dict:
    """Train, publish, export and (by default) promote each of ``kinds``; returns kind → summary row."""
    from export import digits_export
    from training import digits
    from training.progress import Progress

    progress = progress or Progress(bars=False)
    names = {**NAMES, **(names or {})}
    progress.stage("data")
    data = digits.load(limit)
    echo(f"MNIST split {data.description['split']} (seed {data.description['seed']}); "
         f"refused by the preprocessing (kept as is): {data.refused}")
    rows = {}
    for kind in kinds:
        result = digits.train(kind, data, epochs, progress)
        version = digits.publish(registry, names[kind], result)
        progress.stage(f"export {kind}")
        card = digits_export.add_formats(registry, names[kind], version, result.model, data.x["test"],
                                         data.y["test"], data.x["train"][:200], log=echo)
        if promote:
            registry.promote(names[kind], version)
        files = card["files"]
        rows[kind] = {"name": names[kind], "version": version, "test_accuracy": card["metrics"]["test"]["accuracy"],
                      "test_images": card["metrics"]["test"]["images"],
                      "sklearn_accuracy": card["metrics"].get("sklearn_digits", {}).get("accuracy"),
                      "parameters": card["architecture"]["parameters"], "train_seconds": result.seconds,
                      "onnx_bytes": files["onnx"]["bytes"], "int8_bytes": files["onnx_int8"]["bytes"],
                      "tfjs_bytes": files["tfjs"]["bytes"],
                      "latency_ms": latency_ms(registry.file(names[kind], version, "onnx"), data.x["test"]),
                      "int8_accuracy": card["parity"]["onnx_int8_vs_keras"]["accuracy"]}
    progress.finish(versions={kind: row["version"] for kind, row in rows.items()})
    return rows


def comparison(rows: dict) -> str:
    """The side-by-side table printed at the end of ``riim digits train``."""
    header = ("", *(f"{row['name']}:{row['version']}" for row in rows.values()))
    lines = [
        ("test accuracy (MNIST held out)", *(f"{row['test_accuracy']:.2%} of {row['test_images']}" for row in rows.values())),
        ("int8 ONNX test accuracy", *(f"{row['int8_accuracy']:.2%}" for row in rows.values())),
        ("sklearn digits (cross-dataset)", *("—" if row["sklearn_accuracy"] is None else f"{row['sklearn_accuracy']:.2%}"
                                             for row in rows.values())),
        ("parameters", *(f"{row['parameters']:,}" for row in rows.values())),
        ("ONNX / int8 / TF.js KB", *(f"{row['onnx_bytes'] / 1024:.0f} / {row['int8_bytes'] / 1024:.0f} / "
                                     f"{row['tfjs_bytes'] / 1024:.0f}" for row in rows.values())),
        ("ONNX Runtime p50 / p95 ms (1 thread)", *(f"{row['latency_ms']['p50']:.3f} / {row['latency_ms']['p95']:.3f}"
                                                   for row in rows.values())),
        ("training seconds", *(f"{row['train_seconds']:.1f}" for row in rows.values())),
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)) for line in [header, *lines])


@click.group("digits")
def digits_group():
    """Handwritten digits: the document's MLP against a small CNN (page /digits)."""


@digits_group.command("train")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR",
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "kinds", type=click.Choice(["mlp", "cnn"]), multiple=True,
              help="Train only this network (repeatable; default both).")
@click.option("--epochs", type=click.IntRange(1, 200), help="Override the epochs (default: MLP 10 as the document, CNN 30).")
@click.option("--limit", type=click.IntRange(50, 8000), help="Train on this many digits only (quick runs).")
@click.option("--promote/--no-promote", default=True, show_default=True)
@click.option("--progress-file", type=click.Path(dir_okay=False, path_type=Path))
def train(models_dir, kinds, epochs, limit, promote, progress_file):
    """Train both networks on the fixed MNIST split, publish, export ONNX + int8 + TF.js, compare."""
    from training.digits_data import MissingDigitsError
    from training.progress import Progress

    progress = Progress(progress_file, bars=True)
    try:
        rows = train_and_publish(Registry(models_dir), kinds or ("mlp", "cnn"), limit, epochs, promote, progress,
                                 echo=click.echo)
    except MissingDigitsError as error:
        progress.fail(str(error))
        raise click.ClickException(str(error)) from None
    click.echo(comparison(rows))


COMMANDS = (digits_group,)
