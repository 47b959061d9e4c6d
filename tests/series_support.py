"""Real linear time-series models in ONNX, made without TensorFlow, that honour the series card contract.

On the real weekly CO2 series (statsmodels, through ``riim data import series``'s importer):

- a linear forecaster: least squares from the encoded window (models/series.py ``encode``) to the encoded
  horizon, as ONNX ``Reshape → MatMul → Add`` with input ``sequence`` and output ``forecast``;
- a linear autoencoder (PCA): the centred window projected on its top principal components and back,
  output ``reconstruction``; its threshold is calibrated like training's (a quantile of validation scores).

Both are published to a registry with a card, an ``evaluation.json`` and the held-out comparison against
the baselines, so the API and the page run on real data and real models in a few seconds.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models import atomic
from models import series as ts
from models.registry import Registry

WINDOW, SEASON = 26, 52
HORIZON = ts.horizon_for(WINDOW)


def co2(tmp_dir) -> tuple[np.ndarray, np.ndarray]:
    """(dates, values) of the real CO2 series, validated and filled by the training loader."""
    from training.series_data import import_series, load_folder

    import_series(tmp_dir / "data", ["co2"])
    series = load_folder(tmp_dir / "data" / "co2")[0]
    return series.dates, series.values


def _onnx(matrix: np.ndarray, bias: np.ndarray, output: str, path) -> None:
    """``output = reshape(sequence, (-1, window)) @ matrix + bias``."""
    window = matrix.shape[0]
    nodes = [helper.make_node("Reshape", ["sequence", "flat_shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "weights"], ["projected"]),
             helper.make_node("Add", ["projected", "bias"], [output])]
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("sequence", TensorProto.FLOAT, [None, window, 1])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, matrix.shape[1]])],
        [numpy_helper.from_array(np.array([-1, window], np.int64), "flat_shape"),
         numpy_helper.from_array(matrix.astype(np.float32), "weights"),
         numpy_helper.from_array(bias.astype(np.float32), "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def _card(model: str, task: str, scaler: ts.Scaler, dates, values, horizon: int, output: str, metrics: dict) -> dict:
    return {"schema_version": 1, "task": task, "description": {"en": f"linear {model} (tests)", "es": f"{model} lineal (pruebas)"},
            "series": {"model": model, "architecture": "linear (tests/series_support.py)", "window": WINDOW,
                       "horizon": horizon, "features": ["co2"], "target": "co2", "scaler": scaler.card(),
                       "season": SEASON, "input": {"name": "sequence", "shape": [WINDOW, 1],
                                                   "transform": "centred" if model == "autoencoder" else "minus_last"},
                       "output": {"name": output, "shape": [WINDOW if model == "autoencoder" else horizon]},
                       "step": "7 days 00:00:00",
                       "data": {"path": "co2", "files": [{"file": "co2.csv", "rows": len(values),
                                                          "start": str(dates[0])[:10], "end": str(dates[-1])[:10]}]},
                       "last_window": {"co2": values[-WINDOW:].round(6).tolist()}},
            "training": {"epochs": 1, "epochs_run": 1, "batch_size": 1, "learning_rate": 0.0, "seconds": 0.1,
                         "windows": {"train": 1, "validation": 1, "test": 1}, "history": {"loss": [1.0], "val_loss": [1.0]}},
            "metrics": metrics}


def publish(registry: Registry, dates: np.ndarray, values: np.ndarray) -> dict:
    """Publish ``series-price`` (linear forecaster) and ``series-anomaly`` (PCA autoencoder); their facts."""
    n = len(values)
    train_end, validation_end = int(n * 0.7), int(n * 0.85)
    scaler = ts.Scaler.fit(values[:train_end])
    past, future = ts.windows(values, WINDOW, HORIZON)
    starts = np.arange(len(past)) + WINDOW
    train = starts + HORIZON <= train_end
    x = ts.encode(past[train], scaler)[..., 0]
    y = ts.encode_target(past[train], future[train], scaler)
    design = np.c_[x, np.ones(len(x))]
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    matrix, bias = solution[:-1], solution[-1]
    test = starts >= validation_end
    predicted = ts.decode(ts.encode(past[test], scaler)[..., 0] @ matrix + bias, past[test], scaler)
    forecasts = {"model": predicted, "naive": ts.naive(past[test], HORIZON),
                 "seasonal_naive": ts.seasonal_naive(values, starts[test], HORIZON, SEASON)}
    table = ts.compare(future[test], forecasts, past[test][:, -1], ts.mase_scale(values[:train_end], SEASON))
    metrics = {"heldout": {"overall": table, "per_series": {"co2": table}, "season": SEASON}}
    with registry.publish("series-price", _card("lstm", "time-series-forecasting", scaler, dates, values, HORIZON,
                                                "forecast", metrics)) as draft:
        _onnx(matrix, bias, "forecast", draft.dir / "model.onnx")
        rows = list(range(0, int(test.sum()) - HORIZON, HORIZON))[:6]
        plots = {"co2": {"dates": [[str(d)[:10] for d in dates[s:s + HORIZON]] for s in starts[test][rows]],
                         "actual": future[test][rows].tolist(),
                         **{k: v[rows].tolist() for k, v in forecasts.items()}}}
        atomic.write_json(draft.dir / "evaluation.json", {"history": {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]},
                                                          "plots": plots})
        draft.card["files"] = {"onnx": "model.onnx", "evaluation": "evaluation.json"}

    windows = np.lib.stride_tricks.sliding_window_view(values[:train_end], WINDOW)
    centred = ts.encode_centred(windows, scaler)[..., 0]
    components = np.linalg.svd(centred - centred.mean(0), full_matrices=False)[2][:4]
    projection = components.T @ components
    offset = centred.mean(0) - centred.mean(0) @ projection

    def scores(series: np.ndarray) -> np.ndarray:
        x = ts.encode_centred(np.lib.stride_tricks.sliding_window_view(series, WINDOW), scaler)[..., 0]
        return ts.point_scores((x @ projection + offset - x) ** 2, len(series))

    threshold = float(np.quantile(scores(values[train_end:validation_end]), 0.99))
    injected = values[validation_end:].copy()
    labels = np.zeros(len(injected), bool)
    for at in (60, 150, 250):
        injected[at] += 8.0
        labels[at] = True
    anomaly_scores = scores(injected)
    measured = {"auroc": ts.auroc(labels, anomaly_scores), "precision_at_k": ts.precision_at_k(labels, anomaly_scores, 3)}
    metrics = {"anomaly": {"threshold": {"value": threshold, "method": "quantile 0.99", "quantile": 0.99},
                           "injected": {"method": "three +8 ppm spikes", "per_series": {"co2": measured},
                                        "mean_auroc": measured["auroc"], "mean_precision_at_k": measured["precision_at_k"]}}}
    card = _card("autoencoder", "time-series-anomaly", scaler, dates, values, 0, "reconstruction", metrics)
    card["anomaly"] = metrics["anomaly"]["threshold"]
    with registry.publish("series-anomaly", card) as draft:
        _onnx(projection, offset, "reconstruction", draft.dir / "model.onnx")
        atomic.write_json(draft.dir / "evaluation.json", {"history": {"loss": [1.0]}, "plots": {"co2": {
            "dates": [str(d)[:10] for d in dates[validation_end:]], "values": injected.tolist(),
            "labels": labels.astype(int).tolist(), "scores": anomaly_scores.tolist()}}})
        draft.card["files"] = {"onnx": "model.onnx", "evaluation": "evaluation.json"}
    return {"matrix": matrix, "bias": bias, "scaler": scaler, "threshold": threshold, "values": values,
            "injected": injected, "labels": labels, "scores": anomaly_scores, "heldout": table}
