"""Time-series numerics that training, evaluation and serving share (numpy only, no TensorFlow, no pandas).

- Windows: a window of ``window`` past values predicts the next ``horizon = round(0.3 × window)`` values at
  once (direct multi-step output).
- Scaling: a standard scaler fitted on the training part only (its numbers travel in the card). The networks
  see each window *relative to its last value* (``z - z_last``) and predict the future the same way, so a
  series that leaves the training range (stock prices) stays in the range the network learnt; the anomaly
  autoencoder sees each window minus its own mean.
- Metrics: MAE, RMSE, MAPE, sMAPE, MASE and directional accuracy of a forecast, and the naive (last value)
  and seasonal-naive forecasts they are always compared with, on the same windows.
- Anomalies: per-point scores from per-window reconstruction errors, AUROC and precision@k.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np

HORIZON_FRACTION = 0.3  # the source document: predict 30 % of the window width
# The real series `riim data import series` writes (training/series_data.py), each with its season in steps
# (5 trading days, 52 weeks, the 11-year solar cycle) for the seasonal-naive baseline.
SERIES = {"msft": 5, "msft-spread": 5, "stocks": 5, "co2": 52, "sunspots": 11}
BUNDLED = {"co2": ("co2/co2.csv", "co2"), "sunspots": ("sunspots/sunspots.csv", "SUNACTIVITY")}  # statsmodels files


def bundled_series(name: str) -> dict:
    """``{"name", "dates", "values"}`` of a real series bundled as a CSV file with statsmodels (``co2`` weekly
    with its missing weeks as None, ``sunspots`` yearly), read without importing statsmodels (for serving)."""
    from models.real_data import package_dir

    folder = package_dir("statsmodels", "pip install statsmodels") / "datasets"
    path, column = BUNDLED[name]
    dates, values = [], []
    with open(folder / path, newline="") as handle:
        for row in csv.DictReader(handle):
            stamp = row.get("date") or row["YEAR"].split(".")[0]
            dates.append(f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if len(stamp) == 8 else stamp)
            values.append(float(row[column]) if row[column] not in ("", "NA", "nan") else None)
    return {"name": name, "dates": dates, "values": values, "season": SERIES[name]}


def horizon_for(window: int) -> int:
    """``round(0.3 × window)`` (halves rounded up), at least 1."""
    return max(1, math.floor(HORIZON_FRACTION * window + 0.5))


def windows(values: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (past ``window``, next ``horizon``) pair of a 1-D series: arrays (n, window) and (n, horizon)."""
    values = np.asarray(values, dtype=np.float64)
    count = len(values) - window - horizon + 1
    if count < 1:
        raise ValueError(f"a series of {len(values)} values has no window of {window} + horizon {horizon}")
    frames = np.lib.stride_tricks.sliding_window_view(values, window + horizon)[:count]
    return frames[:, :window].copy(), frames[:, window:].copy()


@dataclass(frozen=True)
class Scaler:
    """``z = (x - mean) / scale``, fitted on the training part of a series."""
    mean: float
    scale: float
    rows: int = 0

    @classmethod
    def fit(cls, train: np.ndarray) -> Scaler:
        train = np.asarray(train, dtype=np.float64)
        scale = float(train.std())
        return cls(float(train.mean()), scale if scale > 0 else 1.0, int(len(train)))

    def transform(self, values) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.scale + self.mean

    def card(self) -> dict:
        return {"method": "standard", "mean": self.mean, "scale": self.scale, "fitted_on": "train",
                "rows": self.rows}

    @classmethod
    def from_card(cls, section: dict) -> Scaler:
        return cls(float(section["mean"]), float(section["scale"]), int(section.get("rows", 0)))


def encode(past: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Network input for windows of raw values (n, window): scaled, minus each window's last value;
    shape (n, window, 1) float32."""
    z = scaler.transform(past)
    return (z - z[:, -1:])[..., None].astype(np.float32)


def encode_target(past: np.ndarray, future: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Training target: the future, scaled, minus the window's last (scaled) value; (n, horizon) float32."""
    return (scaler.transform(future) - scaler.transform(past[:, -1:])).astype(np.float32)


def decode(outputs: np.ndarray, past: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Network outputs back to values: last value of each window plus the predicted scaled change."""
    return past[:, -1:] + np.asarray(outputs, dtype=np.float64) * scaler.scale


def encode_centred(past: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Autoencoder input (and target): each scaled window minus its own mean; (n, window, 1) float32."""
    z = scaler.transform(past)
    return (z - z.mean(axis=1, keepdims=True))[..., None].astype(np.float32)


# --- baselines and metrics ----------------------------------------------------------------------------

def naive(past: np.ndarray, horizon: int) -> np.ndarray:
    """The last value repeated over the horizon."""
    return np.repeat(past[:, -1:], horizon, axis=1)


def seasonal_naive(series: np.ndarray, starts: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """For a forecast starting at index ``s`` of ``series``: step k is the value one season (or as many
    seasons as needed to reach the past) before, ``series[s + k - season·ceil((k+1)/season)]``."""
    if season < 2:
        return np.repeat(np.asarray(series)[np.asarray(starts) - 1][:, None], horizon, axis=1)
    steps = np.arange(horizon)
    back = season * np.ceil((steps + 1) / season).astype(int)
    index = np.asarray(starts)[:, None] + steps[None, :] - back[None, :]
    if index.min() < 0:
        raise ValueError("seasonal-naive needs one full season of history before the first forecast")
    return np.asarray(series, dtype=np.float64)[index]


def mase_scale(train: np.ndarray, season: int) -> float:
    """Mean absolute error of the in-sample (seasonal-)naive forecast on the training part: MASE's scale."""
    train = np.asarray(train, dtype=np.float64)
    lag = max(1, season)
    if len(train) <= lag:
        raise ValueError(f"the training part ({len(train)} values) is shorter than one season ({lag})")
    scale = float(np.mean(np.abs(train[lag:] - train[:-lag])))
    return scale if scale > 0 else 1.0


def forecast_metrics(truth: np.ndarray, predicted: np.ndarray, last: np.ndarray, scale: float) -> dict:
    """MAE, RMSE, MAPE and sMAPE (%), MASE (MAE / ``scale``) and directional accuracy (share of steps whose
    predicted direction from the window's last value is right; steps where the truth does not move are left
    out) of (n, horizon) forecasts."""
    truth, predicted = np.asarray(truth, np.float64), np.asarray(predicted, np.float64)
    last = np.asarray(last, np.float64).reshape(-1, 1)
    error = predicted - truth
    mae = float(np.mean(np.abs(error)))
    nonzero = truth != 0
    mape = float(np.mean(np.abs(error[nonzero] / truth[nonzero])) * 100) if nonzero.any() else None
    denominator = np.abs(truth) + np.abs(predicted)
    smape = float(np.mean(np.where(denominator > 0, 2 * np.abs(error) / np.where(denominator > 0, denominator, 1),
                                   0)) * 100)
    moved = np.sign(truth - last) != 0
    direction = np.sign(predicted - last) == np.sign(truth - last)
    return {"mae": mae, "rmse": float(np.sqrt(np.mean(error ** 2))), "mape": mape, "smape": smape,
            "mase": mae / scale, "directional_accuracy": float(direction[moved].mean()) if moved.any() else None,
            "windows": int(truth.shape[0])}


def compare(truth: np.ndarray, forecasts: dict[str, np.ndarray], last: np.ndarray, scale: float) -> dict:
    """Metrics of each forecast (model and baselines) on the same windows, plus the model's MAE relative
    to each baseline (< 1 means the model is better)."""
    table = {name: forecast_metrics(truth, values, last, scale) for name, values in forecasts.items()}
    table["relative_mae"] = {name: table["model"]["mae"] / table[name]["mae"] if table[name]["mae"] else None
                             for name in forecasts if name != "model"}
    return table


# --- anomalies ------------------------------------------------------------------------------------------

def point_scores(errors: np.ndarray, length: int) -> np.ndarray:
    """Per-point anomaly score of a series of ``length`` values from (n, window) squared reconstruction
    errors of its n = length - window + 1 sliding windows: the mean error over the windows covering it."""
    errors = np.asarray(errors, dtype=np.float64)
    count, window = errors.shape
    if count != length - window + 1:
        raise ValueError(f"{count} windows of {window} do not cover a series of {length}")
    total, covered = np.zeros(length), np.zeros(length)
    for offset in range(window):  # window positions, not windows: at most a few hundred numpy additions
        total[offset:offset + count] += errors[:, offset]
        covered[offset:offset + count] += 1
    return total / covered


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (probability a random anomaly scores above a random normal point; ties ½)."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores, np.float64)
    positive, negative = scores[labels], scores[~labels]
    if not len(positive) or not len(negative):
        raise ValueError("AUROC needs both anomalous and normal points")
    order = np.argsort(np.concatenate([positive, negative]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([positive, negative])[order]
    ranks[order] = np.arange(1, len(order) + 1)
    for value in np.unique(values[np.r_[False, values[1:] == values[:-1]]]):  # average ranks of ties
        tied = order[values == value]
        ranks[tied] = ranks[tied].mean()
    return float((ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2)
                 / (len(positive) * len(negative)))


def precision_at_k(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of true anomalies among the ``k`` highest-scoring points."""
    top = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")[:k]
    return float(np.asarray(labels, bool)[top].mean())
