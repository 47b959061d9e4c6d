"""Window models for time series in tf_keras: build, train with a checkpoint per epoch (resumable), walk-forward
cross-validation, and held-out evaluation against the naive and seasonal-naive baselines.

Each series is split in time: the first part trains (the scaler is fitted on it only), the next validates
(the weights with the lowest validation loss are kept), the last is held out for the final metrics. A window
belongs to the part its forecast falls in; its past may reach back into the previous part.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models import atomic
from models import series as ts
from models.series_config import SeriesConfig
from training.progress import Progress
from training.series_data import Series
from training.tf import keras, tf

INPUT, FORECAST, RECONSTRUCTION = "sequence", "forecast", "reconstruction"
DESCRIPTIONS = {
    "lstm": "LSTM(32) -> Dense(horizon): direct multi-step forecast",
    "gru": "GRU(32) -> Dense(horizon): direct multi-step forecast",
    "cnn": "Conv1D(32,3) x2 -> Flatten -> Dense(horizon): direct multi-step forecast from local patterns",
    "autoencoder": "Dense autoencoder window -> 16 -> 6 -> 16 -> window; anomaly = reconstruction error",
}


def build(kind: str, window: int, horizon: int, seed: int = 0) -> keras.Model:
    """The network for ``kind``: input ``sequence`` (window, 1); output ``forecast`` (horizon) or
    ``reconstruction`` (window) for the autoencoder."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((window, 1), name=INPUT)
    if kind == "lstm":
        x = keras.layers.LSTM(32)(inputs)
    elif kind == "gru":
        x = keras.layers.GRU(32)(inputs)
    elif kind == "cnn":
        x = keras.layers.Conv1D(32, 3, activation="relu", padding="causal")(inputs)
        x = keras.layers.Conv1D(32, 3, activation="relu", padding="causal")(x)
        x = keras.layers.Flatten()(x)
    elif kind == "autoencoder":
        x = keras.layers.Flatten()(inputs)
        for units in (16, 6, 16):
            x = keras.layers.Dense(units, activation="relu")(x)
        return keras.Model(inputs, keras.layers.Dense(window, name=RECONSTRUCTION)(x), name="autoencoder")
    else:
        raise ValueError(f"unknown model {kind!r}")
    return keras.Model(inputs, keras.layers.Dense(horizon, name=FORECAST)(x), name=kind)


# --- data -----------------------------------------------------------------------------------------------

@dataclass
class Part:
    """Windows of one part (train / validation / test) of all series: raw past and future, series index,
    and the index in its series where each forecast starts."""
    past: np.ndarray
    future: np.ndarray
    series: np.ndarray
    starts: np.ndarray

    def __len__(self):
        return len(self.past)

    def take(self, rows) -> Part:
        return Part(self.past[rows], self.future[rows], self.series[rows], self.starts[rows])


@dataclass
class Windows:
    window: int
    horizon: int
    scaler: ts.Scaler
    train: Part
    validation: Part
    test: Part
    bounds: list[tuple[int, int, int]] = field(default_factory=list)  # per series: train end, validation end, n


def split(series: list[Series], window: int, config: SeriesConfig) -> Windows:
    """Windows of every series assigned to train / validation / test, and the scaler fitted on the
    training parts only."""
    horizon = window if config.model == "autoencoder" else ts.horizon_for(window)
    parts = {"train": [], "validation": [], "test": []}
    bounds, training_values = [], []
    for index, item in enumerate(series):
        n = len(item.values)
        train_end = int(round(n * (1 - config.validation_fraction - config.test_fraction)))
        validation_end = int(round(n * (1 - config.test_fraction)))
        bounds.append((train_end, validation_end, n))
        training_values.append(item.values[:train_end])
        if config.model == "autoencoder":  # the window itself is what is reconstructed
            past = np.lib.stride_tricks.sliding_window_view(item.values, window).copy()
            future = past[:, :0]
            first = np.arange(len(past))  # the first value a window's part must own
            starts = last = first + window
        else:
            try:
                past, future = ts.windows(item.values, window, horizon)
            except ValueError:
                raise ValueError(f"{item.name}: {n} values are too few for a window of {window} + horizon "
                                 f"{horizon}") from None
            first = starts = np.arange(len(past)) + window
            last = starts + horizon
        assignments = {"train": last <= train_end, "validation": (first >= train_end) & (last <= validation_end),
                       "test": first >= validation_end}
        for name, mask in assignments.items():
            parts[name].append(Part(past[mask], future[mask], np.full(mask.sum(), index), starts[mask]))
    joined = {name: Part(*(np.concatenate([getattr(p, f) for p in pieces]) for f in ("past", "future", "series", "starts")))
              for name, pieces in parts.items()}
    for name, part in joined.items():
        if len(part) < 2:
            raise ValueError(f"the {name} part has {len(part)} windows of {window}: the series are too short for "
                             "this window (lower ventana or the partition fractions)")
    scaler = ts.Scaler.fit(np.concatenate(training_values))
    return Windows(window, horizon, scaler, joined["train"], joined["validation"], joined["test"], bounds)


def arrays(part: Part, scaler: ts.Scaler, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs and targets of a part."""
    if kind == "autoencoder":
        x = ts.encode_centred(part.past, scaler)
        return x, x[..., 0]
    return ts.encode(part.past, scaler), ts.encode_target(part.past, part.future, scaler)


# --- training with checkpoints --------------------------------------------------------------------------

class Checkpoint(keras.callbacks.Callback):
    """After every epoch: the whole model (weights + optimizer) as ``last.h5``, the best-validation weights as
    ``best.weights.h5``, and ``state.json`` (epoch, history, key), each written atomically; progress too."""

    def __init__(self, directory: Path, key: str, epochs: int, progress: Progress, history: dict):
        super().__init__()
        self.dir, self.key, self.epochs, self.progress = directory, key, epochs, progress
        self.history = {k: list(v) for k, v in history.items()}

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        losses = self.history.get("val_loss", self.history["loss"])
        if losses[-1] <= min(losses):
            with atomic.replacing(self.dir / "best.weights.h5") as temp:
                self.model.save_weights(temp)
        with atomic.replacing(self.dir / "last.h5") as temp:
            self.model.save(temp, save_format="h5")
        atomic.write_json(self.dir / "state.json", {"key": self.key, "epoch": epoch + 1, "history": self.history})
        self.progress.step(epoch + 1, self.epochs, **logs)


def run_key(config: SeriesConfig, window: int, data: Windows) -> str:
    """What a checkpoint is valid for: the model, window, training parameters and data."""
    digest = hashlib.sha256()
    digest.update(json.dumps([config.model, window, config.batch_size, config.learning_rate, config.seed,
                              config.validation_fraction, config.test_fraction, data.scaler.card()]).encode())
    digest.update(np.ascontiguousarray(data.train.past).tobytes())
    return digest.hexdigest()[:16]


def fit(data: Windows, config: SeriesConfig, directory: Path, progress: Progress, resume: bool = False,
        stage: str = "train") -> tuple[keras.Model, dict]:
    """Train (or resume) one model on ``data``; returns it with the best validation weights and the history."""
    directory.mkdir(parents=True, exist_ok=True)
    key = run_key(config, data.window, data)
    state = atomic.read_json(directory / "state.json") if resume else None
    x, y = arrays(data.train, data.scaler, config.model)
    validation = arrays(data.validation, data.scaler, config.model)
    progress.stage(stage, config.epochs)
    if isinstance(state, dict) and state.get("key") == key and (directory / "last.h5").is_file():
        model = keras.models.load_model(directory / "last.h5")
        history, initial = state["history"], int(state["epoch"])
        progress.update(resumed_from_epoch=initial)
    else:
        if resume and state is not None:
            progress.update(resume_ignored="the checkpoint belongs to other data or settings")
        model = build(config.model, data.window, data.horizon, config.seed)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
        history, initial = {}, 0
    callbacks = [Checkpoint(directory, key, config.epochs, progress, history)]
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=config.patience))
    if initial < config.epochs:
        tf.random.set_seed(config.seed + initial)
        model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, initial_epoch=initial,
                  validation_data=validation, shuffle=True, verbose=0, callbacks=callbacks)
    history = callbacks[0].history
    if (directory / "best.weights.h5").is_file():
        model.load_weights(directory / "best.weights.h5")
    return model, history


def walk_forward(data: Windows, config: SeriesConfig, progress: Progress) -> dict | None:
    """Walk-forward cross-validation (scikit-learn ``TimeSeriesSplit``) on the training + validation windows
    ordered in time: each fold trains a fresh model on the past and scores the next block, against naive."""
    if config.folds < 2:
        return None
    from sklearn.model_selection import TimeSeriesSplit

    pool = Part(*(np.concatenate([getattr(data.train, f), getattr(data.validation, f)])
                  for f in ("past", "future", "series", "starts")))
    pool = pool.take(np.argsort(pool.starts, kind="mergesort"))
    x, y = arrays(pool, data.scaler, config.model)
    folds = []
    progress.stage("walk-forward", config.folds, unit="fold")
    for number, (train_rows, test_rows) in enumerate(TimeSeriesSplit(n_splits=config.folds).split(x), 1):
        model = build(config.model, data.window, data.horizon, config.seed + number)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
        model.fit(x[train_rows], y[train_rows], batch_size=config.batch_size, epochs=config.epochs, shuffle=True,
                  verbose=0)
        predicted = model.predict(x[test_rows], verbose=0, batch_size=1024)
        fold = {"train_windows": int(len(train_rows)), "test_windows": int(len(test_rows)),
                "mae_scaled": float(np.mean(np.abs(predicted - y[test_rows])))}
        if config.model != "autoencoder":  # the naive forecast is a zero change in this encoding
            fold["naive_mae_scaled"] = float(np.mean(np.abs(y[test_rows])))
            fold["relative_mae_naive"] = fold["mae_scaled"] / fold["naive_mae_scaled"]
        folds.append(fold)
        progress.step(number, config.folds)
    summary = {"method": "TimeSeriesSplit", "folds": folds,
               "mean_mae_scaled": float(np.mean([f["mae_scaled"] for f in folds]))}
    if config.model != "autoencoder":
        summary["mean_relative_mae_naive"] = float(np.mean([f["relative_mae_naive"] for f in folds]))
    return summary


# --- evaluation -----------------------------------------------------------------------------------------

def forecast(model, past: np.ndarray, scaler: ts.Scaler) -> np.ndarray:
    """Values predicted by a forecasting model for windows of raw values (n, window)."""
    return ts.decode(model.predict(ts.encode(past, scaler), verbose=0, batch_size=1024), past, scaler)


def evaluate_forecast(model, data: Windows, series: list[Series], season: int) -> dict:
    """Held-out metrics of the model, naive and seasonal-naive on the same test windows, per series and
    overall (window-weighted); MASE is scaled by the in-sample (seasonal-)naive error of each training part."""
    predicted = forecast(model, data.test.past, data.scaler)
    per_series, plots = {}, {}
    for index, item in enumerate(series):
        rows = data.test.series == index
        if not rows.any():
            continue
        part = data.test.take(rows)
        train_end = data.bounds[index][0]
        forecasts = {"model": predicted[rows], "naive": ts.naive(part.past, data.horizon)}
        if season > 1:
            forecasts["seasonal_naive"] = ts.seasonal_naive(item.values, part.starts, data.horizon, season)
        scale = ts.mase_scale(item.values[:train_end], season)
        per_series[item.name] = ts.compare(part.future, forecasts, part.past[:, -1], scale)
        plots[item.name] = forecast_plot(item, part, forecasts)
    return {"overall": _weighted(per_series), "per_series": per_series, "season": season,
            "mase_scale": "in-sample seasonal-naive MAE" if season > 1 else "in-sample naive MAE"}, plots


def forecast_plot(item: Series, part: Part, forecasts: dict, points: int = 12) -> dict:
    """A few non-overlapping test windows for charts: dates, actual values and each forecast."""
    step = max(1, len(part) // points)
    rows = list(range(0, len(part), max(step, part.future.shape[1])))[:points]
    return {"dates": [[str(d)[:10] for d in item.dates[part.starts[r]:part.starts[r] + part.future.shape[1]]]
                      for r in rows],
            "actual": part.future[rows].round(6).tolist(),
            **{name: values[rows].round(6).tolist() for name, values in forecasts.items()}}


def _weighted(per_series: dict) -> dict:
    """Window-weighted mean of each metric over the series (relative MAE recomputed from the means)."""
    total = sum(table["model"]["windows"] for table in per_series.values())
    names = [n for n in next(iter(per_series.values())) if n != "relative_mae"]
    overall = {}
    for name in names:
        overall[name] = {}
        for metric in ("mae", "rmse", "mape", "smape", "mase", "directional_accuracy"):
            values = [(t[name][metric], t[name]["windows"]) for t in per_series.values() if t[name][metric] is not None]
            weight = sum(w for _, w in values)
            overall[name][metric] = sum(v * w for v, w in values) / weight if weight else None
        overall[name]["windows"] = total
    overall["relative_mae"] = {n: overall["model"]["mae"] / overall[n]["mae"] for n in names if n != "model"}
    return overall


def reconstruction_errors(model, past: np.ndarray, scaler: ts.Scaler) -> np.ndarray:
    x = ts.encode_centred(past, scaler)
    return (model.predict(x, verbose=0, batch_size=1024) - x[..., 0]) ** 2


def series_scores(model, values: np.ndarray, window: int, scaler: ts.Scaler) -> np.ndarray:
    """Per-point anomaly scores of a whole series (mean squared reconstruction error of covering windows)."""
    past = np.lib.stride_tricks.sliding_window_view(np.asarray(values, np.float64), window)
    return ts.point_scores(reconstruction_errors(model, past, scaler), len(values))


def inject(values: np.ndarray, window: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of a real series with spikes (±4–6 σ of its one-step changes, one point; one per 40 points, at
    least 4) and level shifts (±3–5 σ over a third of a window; one per 100 points, at least 2) at random
    places at least a shift's length apart; and the 0/1 label of each point."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, np.float64).copy()
    labels = np.zeros(len(values), bool)
    sigma = float(np.std(np.diff(values))) or 1.0
    length = max(3, window // 3)
    free = np.arange(1, len(values) - length - 1)
    for kind in ["spike"] * max(4, len(values) // 40) + ["shift"] * max(2, len(values) // 100):
        if not len(free):
            break
        start = int(rng.choice(free))
        span = 1 if kind == "spike" else length
        size = rng.uniform(4, 6) if kind == "spike" else rng.uniform(3, 5)
        values[start:start + span] += rng.choice([-1, 1]) * size * sigma
        labels[start:start + span] = True
        free = free[(free < start - length - 2) | (free > start + span + 2)]
    return values, labels


def evaluate_anomaly(model, data: Windows, series: list[Series], seed: int, quantile: float = 0.99) -> dict:
    """Threshold = ``quantile`` of per-point scores on the (real, clean) validation parts; AUROC and
    precision@k on each test part with injected spikes and level shifts (k = anomalous points)."""
    calibration, per_series, plots = [], {}, {}
    for index, item in enumerate(series):
        train_end, validation_end, _ = data.bounds[index]
        calibration.append(series_scores(model, item.values[train_end:validation_end], data.window, data.scaler))
    threshold = float(np.quantile(np.concatenate(calibration), quantile))
    for index, item in enumerate(series):
        _, validation_end, _ = data.bounds[index]
        test = item.values[validation_end:]
        injected, labels = inject(test, data.window, seed + index)
        scores = series_scores(model, injected, data.window, data.scaler)
        flagged = scores > threshold
        k = int(labels.sum())
        per_series[item.name] = {
            "points": int(len(test)), "anomalous_points": k, "auroc": ts.auroc(labels, scores),
            "precision_at_k": ts.precision_at_k(labels, scores, k), "flagged": int(flagged.sum()),
            "precision_at_threshold": float(labels[flagged].mean()) if flagged.any() else None,
            "recall_at_threshold": float(flagged[labels].mean())}
        plots[item.name] = {"dates": [str(d)[:10] for d in item.dates[validation_end:]],
                            "values": injected.round(6).tolist(), "labels": labels.astype(int).tolist(),
                            "scores": scores.round(8).tolist()}
    return {"threshold": {"value": threshold, "method": f"quantile {quantile} of per-point scores on the "
                          "validation parts", "quantile": quantile},
            "injected": {"method": "spikes (4-6 sigma of one-step changes) and level shifts (3-5 sigma over a "
                                   "third of a window) injected into the real test parts",
                         "per_series": per_series,
                         "mean_auroc": float(np.mean([s["auroc"] for s in per_series.values()])),
                         "mean_precision_at_k": float(np.mean([s["precision_at_k"] for s in per_series.values()]))},
            }, plots
