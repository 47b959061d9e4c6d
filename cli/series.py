"""``riim series train``: the source document's seven steps, driven by ``configuracion.json``.

1 load the configuration → 2 create the folders → 3 load and normalise the data (validation report) →
4 train (one model per window size; checkpoint each epoch, ``--resume``; walk-forward CV) → 5 save the model
(Keras file in ``ruta_modelo``; a registry version with its card, ONNX and TF.js) → 6 predict the horizon
after the end of each series with the last window → 7 save the predictions (``ruta_predicciones``: one value
a line as in the document, plus a CSV with timestamps) and an HTML report.

``--preset price|spread|anomaly|cnn --dir DIR`` writes a ``configuracion.json`` for a real bundled series
into DIR (imported there first) and runs it: that is what the web API's training jobs call.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

import click
import numpy as np

from models import atomic, series_config
from models.registry import DEFAULT_ROOT, Registry, RegistryError
from models.series import SERIES
from training import cli as training_cli

STEPS = ("load configuration", "create folders", "load and normalise data", "train", "save model", "predict",
         "save predictions")
PRESETS = {  # preset → (network, default folder of `riim data import series`, default window)
    "price": ("lstm", "msft", 30),
    "spread": ("gru", "msft-spread", 30),
    "cnn": ("cnn", "co2", 52),
    "anomaly": ("autoencoder", "co2", 30),
}
OHLC_FOLDERS = ("msft", "stocks")


def preset_config(preset: str, directory: Path, epochs: int, batch_size: int, learning_rate: float,
                  window: int | None = None, series: str | None = None) -> Path:
    """Import the preset's real series into ``directory/datos`` and write ``directory/configuracion.json``
    (the column is the loader's default — the close, or the only one — except the spread network on OHLC data,
    which models high − low; the season is the series')."""
    from training import series_data

    model, folder, default_window = PRESETS[preset]
    folder = series or folder
    if folder not in SERIES:
        raise ValueError(f"unknown series {folder!r}; choose from {', '.join(SERIES)}")
    data = directory / "datos"
    if not (data / folder).is_dir():
        series_data.import_series(directory / ".import", [folder])
        data.mkdir(parents=True, exist_ok=True)
        (directory / ".import" / folder).rename(data / folder)
        shutil.rmtree(directory / ".import", ignore_errors=True)
    config = {"ruta_datos": f"datos/{folder}", "ruta_modelo": "modelos", "ruta_checkpoints": "checkpoints",
              "ruta_predicciones": "predicciones.txt", "ventana": window or default_window,
              "parametros_entrenamiento": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate},
              "modelo": model, "estacionalidad": SERIES[folder], "validacion_cruzada": 0}
    if model == "gru" and folder in OHLC_FOLDERS:
        config["columna"] = "spread"
    path = directory / "configuracion.json"
    atomic.write_json(path, config)
    return path


def next_dates(dates: np.ndarray, count: int, step: str | None) -> list[str]:
    """``count`` timestamps after the last of ``dates``, at the series' usual step (business days skip
    weekends)."""
    last = dates[-1].astype("datetime64[D]")
    if step == "1 business day":
        return [str(np.busday_offset(last, k, roll="forward")) for k in range(1, count + 1)]
    usual = np.median(np.diff(dates[-50:]).astype("timedelta64[s]").astype(np.int64)) if len(dates) > 1 else 86400
    return [str((dates[-1] + np.timedelta64(int(usual * k), "s")).astype("datetime64[D]")) for k in range(1, count + 1)]


def card_for(config, window: int, data, series, metrics: dict, history: dict, seconds: float) -> dict:
    from training.series_train import DESCRIPTIONS, FORECAST, INPUT, RECONSTRUCTION

    anomaly = config.model == "autoencoder"
    card = {
        "schema_version": 1, "task": config.task,
        "description": {"en": f"{DESCRIPTIONS[config.model]}; window {window} of {series[0].column} "
                              f"({', '.join(s.name for s in series)})",
                        "es": f"{config.model.upper()} sobre ventanas de {window} valores de {series[0].column} "
                              f"({', '.join(s.name for s in series)})"},
        "series": {
            "model": config.model, "architecture": DESCRIPTIONS[config.model], "window": window,
            "horizon": data.horizon if not anomaly else 0, "features": [series[0].column], "target": series[0].column,
            "scaler": data.scaler.card(), "season": config.season,
            "input": {"name": INPUT, "shape": [window, 1], "transform": "centred" if anomaly else "minus_last"},
            "output": {"name": RECONSTRUCTION if anomaly else FORECAST, "shape": [window if anomaly else data.horizon]},
            "step": series[0].report["gaps"]["step"],
            "data": {"path": str(config.data), "files": [s.report for s in series]},
            "last_window": {s.name: s.values[-window:].round(6).tolist() for s in series},
        },
        "training": {"epochs": config.epochs, "epochs_run": len(history["loss"]), "batch_size": config.batch_size,
                     "learning_rate": config.learning_rate, "seconds": round(seconds, 1),
                     "windows": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
                     "history": history, "config": config.source},
        "metrics": metrics,
    }
    if anomaly:
        card["anomaly"] = metrics["anomaly"]["threshold"]
    return card


def run(config, registry: Registry, progress, resume: bool = False, report: bool = True,
        echo=click.echo) -> dict:
    """Steps 2–7 for a loaded config; returns a summary (versions, best window, metrics, files)."""
    from training import series_data

    progress.update(step=STEPS[1])
    for folder in (config.model_dir, config.checkpoints, config.predictions.parent):
        folder.mkdir(parents=True, exist_ok=True)
    progress.update(step=STEPS[2])
    series = series_data.load_folder(config.data, config.column)  # bad data fails before TensorFlow loads
    for item in series:
        echo(f"data {item.name}: {json.dumps(item.report, ensure_ascii=False)}")
    from export import series_export
    from training import series_report, series_train
    from training.tf import tf

    tf.get_logger().setLevel("ERROR")  # retracing notices when several windows are trained in one process
    warnings.filterwarnings("ignore", message=".*HDF5 file.*")  # the document's modelo.h5 is what we want
    runs = []
    for window in config.windows:
        progress.update(step=STEPS[3], window=window)
        data = series_train.split(series, window, config)
        started = time.perf_counter()
        model, history = series_train.fit(data, config, config.checkpoints / f"{config.name}-w{window}", progress,
                                          resume, stage=f"train w{window}")
        metrics = {"walk_forward": series_train.walk_forward(data, config, progress)}
        seconds = time.perf_counter() - started
        if config.model == "autoencoder":
            metrics["anomaly"], plots = series_train.evaluate_anomaly(model, data, series, config.seed)
        else:
            metrics["heldout"], plots = series_train.evaluate_forecast(model, data, series, config.season)
        metrics = {k: v for k, v in metrics.items() if v is not None}
        metrics["validation_loss"] = float(min(history["val_loss"]))
        progress.update(step=STEPS[4], window=window)
        model.save(config.model_dir / f"{config.name}-w{window}.h5", save_format="h5")
        card = card_for(config, window, data, series, metrics, history, seconds)
        with registry.publish(config.name, card, promote=False) as draft:
            model.save(draft.dir / "model.h5", save_format="h5", include_optimizer=False)
            check = series_train.arrays(data.test.take(slice(0, 64)), data.scaler, config.model)[0]
            files, parity = series_export.write(model, draft.dir, config.formats, check)
            atomic.write_json(draft.dir / "evaluation.json", {"history": history, "plots": plots})
            draft.card["files"] = {"keras": "model.h5", "evaluation": "evaluation.json", **files}
            draft.card["parity"] = parity
        echo(f"published {config.name}:{draft.version} (window {window})")
        runs.append({"window": window, "horizon": data.horizon, "version": draft.version, "metrics": metrics,
                     "history": history, "plots": plots, "seconds": seconds, "epochs_run": len(history["loss"]),
                     "windows": card["training"]["windows"], "validation_loss": metrics["validation_loss"],
                     "model": model, "scaler": data.scaler})
    best = min(runs, key=lambda r: r["validation_loss"])  # chosen on validation, never on the test part
    best["best"] = True
    registry.promote(config.name, best["version"])
    progress.update(step=STEPS[5])
    predictions = predict(config, series, best)
    progress.update(step=STEPS[6])
    files = save_predictions(config, predictions)
    if report:
        files.append(str(series_report.write(config.predictions.with_name(f"informe-{config.name}.html"),
                                             f"RIIM series: {config.name} ({config.model})", runs,
                                             [s.report for s in series], config.source)))
    summary = {"model": config.name, "task": config.task, "best": {"window": best["window"], "version": best["version"]},
               "runs": [{"window": r["window"], "horizon": r["horizon"], "version": r["version"],
                         "validation_loss": r["validation_loss"], "seconds": round(r["seconds"], 1),
                         "metrics": {k: v for k, v in r["metrics"].items() if k in ("heldout", "anomaly", "walk_forward")}}
                        for r in runs],
               "files": files}
    return summary


def predict(config, series, best) -> list[dict]:
    """Step 6: for a forecaster, the horizon after each series' end from its last window; for the
    autoencoder, the points of each series scored above the calibrated threshold."""
    from training import series_train

    model, scaler, window = best["model"], best["scaler"], best["window"]
    rows = []
    for item in series:
        if config.model == "autoencoder":
            scores = series_train.series_scores(model, item.values, window, scaler)
            threshold = best["metrics"]["anomaly"]["threshold"]["value"]
            rows += [{"series": item.name, "timestamp": str(item.dates[i])[:10], "value": float(item.values[i]),
                      "score": float(scores[i])} for i in np.flatnonzero(scores > threshold)]
        else:
            values = series_train.forecast(model, item.values[None, -window:], scaler)[0]
            dates = next_dates(item.dates, len(values), item.report["gaps"]["step"])
            rows += [{"series": item.name, "timestamp": d, "step": k, "prediction": float(v)}
                     for k, (d, v) in enumerate(zip(dates, values), 1)]
    return rows


def save_predictions(config, rows: list[dict]) -> list[str]:
    """Step 7: the document's text file (one prediction a line) and a CSV with timestamps beside it."""
    import csv
    import io

    key = "score" if config.model == "autoencoder" else "prediction"
    text = "".join(f"{row[key]}\n" for row in rows)
    csv_path = config.predictions.with_suffix(".csv")
    if csv_path == config.predictions:
        csv_path = config.predictions.with_name(config.predictions.stem + "-timestamps.csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["series", "timestamp", key])
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_bytes(config.predictions, text.encode())
    atomic.write_bytes(csv_path, buffer.getvalue().encode())
    return [str(config.predictions), str(csv_path)]


@click.group("series")
def series_group():
    """Time series: window models (LSTM, GRU, 1-D CNN, autoencoder) driven by configuracion.json."""


@series_group.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="configuracion.json (the document's keys; English aliases accepted).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)),
              help="Instead of --config: write one for a real bundled series into --dir and run it.")
@click.option("--dir", "work_dir", type=click.Path(file_okay=False, path_type=Path), help="Folder for --preset.")
@click.option("--series", help="With --preset: another folder of `riim data import series` (e.g. stocks, co2).")
@click.option("--epochs", type=click.IntRange(1, 1000), default=20, show_default=True, help="With --preset.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True, help="With --preset.")
@click.option("--learning-rate", type=click.FloatRange(1e-6, 1.0), default=0.001, show_default=True,
              help="With --preset.")
@click.option("--window", type=click.IntRange(4, 1000), help="With --preset (default per preset).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of the same data and settings.")
@click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True, envvar="RIIM_MODELS_DIR",
              help="Model registry folder.")
@click.option("--progress-file", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON file rewritten atomically with the step, epoch, losses (history for live curves) and ETA.")
@click.option("--result-file", type=click.Path(dir_okay=False, path_type=Path), help="JSON summary when done.")
@click.option("--no-report", is_flag=True, help="Skip the HTML report.")
@click.option("--log-json", is_flag=True, help="JSON log lines on stderr instead of progress bars (for jobs).")
def train(config_path, preset, work_dir, series, epochs, batch_size, learning_rate, window, resume, models_dir,
          progress_file, result_file, no_report, log_json):
    """Run the seven steps of the time-series trainer (see `riim series train --help`)."""
    from training.progress import Progress
    from training.real_photos import MissingDataError
    from training.series_data import SeriesDataError

    if log_json:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    progress = Progress(progress_file, bars=not log_json)
    progress.update(step=STEPS[0])
    if (config_path is None) == (preset is None):
        training_cli.exit_with(training_cli.EXIT_CONFIG, "give either --config or --preset (with --dir)", progress)
    try:
        if preset:
            if work_dir is None:
                training_cli.exit_with(training_cli.EXIT_CONFIG, "--preset needs --dir", progress)
            config_path = preset_config(preset, work_dir, epochs, batch_size, learning_rate, window, series)
        config = series_config.load(config_path)
        summary = run(config, Registry(models_dir), progress, resume, report=not no_report)
    except series_config.ConfigError as error:
        training_cli.exit_with(training_cli.EXIT_CONFIG, str(error), progress)
    except (SeriesDataError, ValueError) as error:
        training_cli.exit_with(training_cli.EXIT_DATASET, str(error), progress)
    except MissingDataError as error:
        training_cli.exit_with(training_cli.EXIT_MISSING, str(error), progress)
    except RegistryError as error:
        training_cli.exit_with(training_cli.EXIT_FAILED, str(error), progress)
    if result_file:
        atomic.write_json(result_file, summary)
    progress.finish(version=summary["best"]["version"], model=summary["model"])
    for entry in summary["runs"]:
        heldout = entry["metrics"].get("heldout", {}).get("overall")
        if heldout:
            click.echo(f"window {entry['window']}: held-out MASE model {heldout['model']['mase']:.3f}, "
                       + ", ".join(f"MAE/{k} {v:.3f}" for k, v in heldout["relative_mae"].items()))
        elif "anomaly" in entry["metrics"]:
            injected = entry["metrics"]["anomaly"]["injected"]
            click.echo(f"window {entry['window']}: injected anomalies AUROC {injected['mean_auroc']:.3f}, "
                       f"precision@k {injected['mean_precision_at_k']:.3f}")
    click.echo(f"best: {summary['model']}:{summary['best']['version']} (window {summary['best']['window']}); "
               f"files: {', '.join(summary['files'])}")


COMMANDS = (series_group,)
