"""Classification metrics with one meaning everywhere (training, cross-validation, held-out jobs, parity).

numpy only, so serving needs no scikit-learn; ``tests/test_metrics.py`` proves the results equal
scikit-learn's on the same data. Conventions:

- ``labels`` is the ordered list of classes the metrics are over. Every value in ``truth`` and ``predicted``
  must be one of them (``ValueError`` otherwise); classes absent from the data still count.
- Division by zero gives 0 (scikit-learn's ``zero_division=0``): precision of a class never predicted,
  recall of a class with no support, F1 of a class with neither.
- Macro-F1 is the unweighted mean of the per-class F1 over **all** of ``labels`` — exactly
  ``sklearn.metrics.f1_score(truth, predicted, average="macro", labels=labels, zero_division=0)``.
  A class in ``labels`` that the data never shows therefore lowers it.
- No samples: accuracy and macro-F1 are 0.0 and every count is 0 (scikit-learn raises instead).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _indices(values: Sequence, labels: Sequence) -> np.ndarray:
    """Position in ``labels`` of each value."""
    position = {label: i for i, label in enumerate(labels)}
    if len(position) != len(labels):
        raise ValueError(f"labels must be distinct: {list(labels)}")
    unknown = {value for value in values if value not in position}
    if unknown:
        raise ValueError(f"values not in labels: {sorted(map(str, unknown))}")
    return np.fromiter((position[value] for value in values), dtype=np.int64, count=len(values))


def _check_lengths(truth: Sequence, predicted: Sequence) -> None:
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} samples, predicted {len(predicted)}")


def accuracy(truth: Sequence, predicted: Sequence) -> float:
    """Fraction of positions where ``predicted`` equals ``truth`` (any values; 0.0 for no samples)."""
    _check_lengths(truth, predicted)
    return float(np.mean([t == p for t, p in zip(truth, predicted)])) if len(truth) else 0.0


def confusion_matrix(truth: Sequence, predicted: Sequence, labels: Sequence) -> np.ndarray:
    """(len(labels), len(labels)) int64 counts: row = true class, column = predicted class, in ``labels`` order."""
    _check_lengths(truth, predicted)
    n = len(labels)
    cells = _indices(truth, labels) * n + _indices(predicted, labels)
    return np.bincount(cells, minlength=n * n).reshape(n, n)


def _per_class(matrix: np.ndarray):
    """Precision, recall, F1 and support of each class from its confusion matrix."""
    tp, support, chosen = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)

    def ratio(numerator, denominator):
        return np.divide(numerator, denominator, out=np.zeros(len(matrix)), where=denominator > 0)

    # F1 as 2·tp / (support + chosen), as scikit-learn computes it (equal to 2PR / (P + R) when defined).
    return ratio(tp, chosen), ratio(tp, support), ratio(2.0 * tp, support + chosen), support


def precision_recall_f1_support(truth: Sequence, predicted: Sequence, labels: Sequence):
    """Per-class precision, recall, F1 (float64 arrays) and support (int64), in ``labels`` order."""
    return _per_class(confusion_matrix(truth, predicted, labels))


def _macro(f1: np.ndarray) -> float:
    return float(f1.mean()) if len(f1) else 0.0


def macro_f1(truth: Sequence, predicted: Sequence, labels: Sequence) -> float:
    """Unweighted mean of the per-class F1 over every class in ``labels`` (0.0 without labels or samples)."""
    return _macro(precision_recall_f1_support(truth, predicted, labels)[2])


def summary(truth: Sequence, predicted: Sequence, labels: Sequence[str], paths: Sequence[str] | None = None,
            digits: int | None = 4) -> dict:
    """The one JSON shape of a classification result (the card's ``metrics.test``, ``crossval.out_of_fold``, …).

    ``{"images", "accuracy", "macro_f1", "per_class": {label: {"precision", "recall", "f1", "support"}},
    "confusion": {"labels", "matrix", "files": {true: {predicted: [paths]}}}}``; ``files`` lists only
    non-empty cells and is ``{}`` without ``paths``. Ratios are rounded to ``digits`` (``None``: exact).
    """
    matrix = confusion_matrix(truth, predicted, labels)
    precision, recall, f1, support = _per_class(matrix)
    number = float if digits is None else (lambda value: round(float(value), digits))
    files: dict[str, dict[str, list[str]]] = {}
    if paths is not None:
        _check_lengths(truth, paths)
        for path, true, guess in zip(paths, truth, predicted):
            files.setdefault(true, {}).setdefault(guess, []).append(path)
    return {"images": len(truth), "accuracy": number(accuracy(truth, predicted)),
            "macro_f1": number(_macro(f1)),
            "per_class": {label: {"precision": number(p), "recall": number(r), "f1": number(f), "support": int(s)}
                          for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
            "confusion": {"labels": list(labels), "matrix": matrix.tolist(), "files": files}}


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion (default 95 %): ``(low, high)`` around ``successes / trials``.

    Unlike the normal approximation it stays inside [0, 1] and is honest for small samples and for 0 % or
    100 %: 8 right out of 10 gives (0.490, 0.943), 10 out of 10 gives (0.722, 1.0). No trials: (0.0, 1.0),
    nothing is known."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    p, z2 = successes / trials, z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    margin = z * np.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, float(centre - margin)), min(1.0, float(centre + margin))


def top1_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Fraction of rows of two (N, C) score arrays whose argmax is the same (0.0 for no rows)."""
    return accuracy(np.asarray(reference).argmax(axis=-1), np.asarray(other).argmax(axis=-1))


def max_abs_difference(reference: np.ndarray, other: np.ndarray) -> float:
    """Largest |reference − other| over all elements (0.0 when empty)."""
    delta = np.abs(np.asarray(other, dtype=np.float64) - np.asarray(reference, dtype=np.float64))
    return float(delta.max()) if delta.size else 0.0


def mean_abs_difference(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean |reference − other| over all elements (0.0 when empty)."""
    delta = np.abs(np.asarray(other, dtype=np.float64) - np.asarray(reference, dtype=np.float64))
    return float(delta.mean()) if delta.size else 0.0
