"""Cross-validation of the stage-1 recipe (frozen backbone + trained head); metrics from :mod:`models.metrics`.

Folds are stratified by class and grouped by content hash (scikit-learn ``StratifiedGroupKFold``), so
identical images never sit on both sides. Each fold trains a fresh head on the cached embeddings of its
training part (original + augmented copies) for a fixed number of epochs — the epoch early stopping chose
in the main run, so the held-out fold is never used to decide when to stop — and predicts the held-out
originals. Leave-one-out holds out one distinct image at a time (for tiny sets).
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold

from models import metrics
from training.data import DatasetError


def summarize(y_true, probabilities, classes: list[str], paths: list[str]) -> dict:
    """:func:`models.metrics.summary` of the argmax of ``probabilities`` against class indices ``y_true``."""
    truth = [classes[i] for i in y_true]
    predicted = [classes[i] for i in np.asarray(probabilities).argmax(axis=1)]
    return metrics.summary(truth, predicted, classes, paths)


def folds(labels, groups, n_folds: int, leave_one_out: bool, seed: int):
    """Yield (train indices, held-out indices)."""
    if leave_one_out:
        yield from LeaveOneGroupOut().split(labels, labels, groups)
        return
    smallest = np.bincount(labels).min()
    if n_folds > smallest:
        raise DatasetError(f"{n_folds}-fold cross-validation needs at least {n_folds} images per class "
                         f"(the smallest class has {smallest}); use fewer folds or leave_one_out")
    yield from StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(labels, labels, groups)


def cross_validate(embeddings, augmented, labels, groups, paths, classes, train_head, epochs: int,
                   n_folds: int, leave_one_out: bool, seed: int, progress=None) -> dict:
    """Per-fold and mean ± std accuracy and macro-F1, plus the out-of-fold confusion matrix.

    ``embeddings`` (N, D) of the originals, ``augmented`` (copies, N, D) or ``None``;
    ``train_head(x, y, epochs)`` returns a fitted head model.
    """
    labels = np.asarray(labels)
    splits = list(folds(labels, groups, n_folds, leave_one_out, seed))
    out_of_fold = np.zeros((len(labels), len(classes)), dtype=np.float32)
    per_fold = []
    if progress:
        progress.stage("crossval", len(splits), unit="fold")
    for number, (train, held_out) in enumerate(splits, 1):
        parts = [embeddings[train]] + ([copy[train] for copy in augmented] if augmented is not None else [])
        x = np.concatenate(parts)
        y = np.tile(labels[train], len(parts))
        head = train_head(x, y, epochs)
        out_of_fold[held_out] = head.predict(embeddings[held_out], verbose=0)
        if not leave_one_out:
            fold = summarize(labels[held_out], out_of_fold[held_out], classes, [paths[i] for i in held_out])
            per_fold.append({"fold": number, "images": fold["images"], "accuracy": fold["accuracy"],
                             "macro_f1": fold["macro_f1"]})
        if progress:
            progress.step(number, len(splits))
    overall = summarize(labels, out_of_fold, classes, list(paths))
    result = {"method": "leave_one_out" if leave_one_out else "stratified_group_kfold",
              "recipe": "frozen backbone + head (stage 1)", "epochs_per_fold": epochs, "folds": len(splits),
              "out_of_fold": overall}
    if per_fold:
        for metric in ("accuracy", "macro_f1"):
            values = np.array([fold[metric] for fold in per_fold])
            result[metric] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4)}
        result["per_fold"] = per_fold
    return result
