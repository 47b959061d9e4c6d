"""Learning curves and the automatic verdict: overfitting, underfitting or a good fit.

The rule (applied to the curves of the last training stage, at the epoch early stopping kept):

1. **underfitting** when training accuracy < ``UNDERFIT_ACCURACY`` (0.80): the model cannot even learn the
   images it trains on — train longer, unfreeze more blocks or raise the learning rate;
2. **overfitting** when training accuracy − validation accuracy > ``OVERFIT_GAP`` (0.10), or when the last
   validation loss is more than ``OVERFIT_LOSS_RISE`` (20 %) above its minimum while training loss kept
   falling — the model memorises: add images or augmentation, use fewer trainable blocks;
3. otherwise **good fit**.

Training accuracy is measured with dropout and augmentation on, so it is a slight underestimate. The
verdict describes the run: when rule 2 fires on the loss, early stopping has already put back the weights
of the kept epoch. It keeps the numbers that triggered it, so the student can check the rule by hand.
"""
from __future__ import annotations

from pathlib import Path

UNDERFIT_ACCURACY = 0.80
OVERFIT_GAP = 0.10
OVERFIT_LOSS_RISE = 0.20


def verdict(curves: dict[str, list[float]], best_epoch: int | None = None) -> dict:
    """``curves`` has per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``; ``best_epoch`` is 0-based."""
    epoch = len(curves["loss"]) - 1 if best_epoch is None else best_epoch
    numbers = {"epoch": epoch + 1, "train_accuracy": curves["accuracy"][epoch],
               "val_accuracy": curves["val_accuracy"][epoch]}
    numbers["gap"] = numbers["train_accuracy"] - numbers["val_accuracy"]
    numbers["val_loss_min"] = min(curves["val_loss"])
    numbers["val_loss_last"] = curves["val_loss"][-1]
    lowest = numbers["val_loss_min"]
    numbers["val_loss_rise"] = numbers["val_loss_last"] / lowest - 1 if lowest else 0.0
    train_loss_falling = curves["loss"][-1] < curves["loss"][int(curves["val_loss"].index(numbers["val_loss_min"]))]
    rules = {"underfit_accuracy": UNDERFIT_ACCURACY, "overfit_gap": OVERFIT_GAP, "overfit_loss_rise": OVERFIT_LOSS_RISE}
    if numbers["train_accuracy"] < UNDERFIT_ACCURACY:
        result, reason = "underfitting", f"train accuracy {numbers['train_accuracy']:.3f} < {UNDERFIT_ACCURACY}"
    elif numbers["gap"] > OVERFIT_GAP:
        result, reason = "overfitting", f"train - validation accuracy {numbers['gap']:.3f} > {OVERFIT_GAP}"
    elif numbers["val_loss_rise"] > OVERFIT_LOSS_RISE and train_loss_falling:
        result, reason = "overfitting", (f"validation loss rose {numbers['val_loss_rise']:.0%} above its minimum "
                                         f"(> {OVERFIT_LOSS_RISE:.0%}) while training loss fell")
    else:
        result, reason = "good_fit", "no underfitting or overfitting rule fired"
    return {"verdict": result, "reason": reason,
            "numbers": {k: round(float(v), 4) for k, v in numbers.items()}, "rules": rules}


def plot_curves(curves: dict[str, dict[str, list[float]]], path: Path) -> Path | None:
    """Loss and accuracy per epoch, train vs validation, stages one after the other; ``None`` without
    matplotlib (the curves are in the card anyway)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    offset = 0
    for stage, curve in curves.items():
        epochs = range(offset + 1, offset + len(curve["loss"]) + 1)
        for axis, metric in zip(axes, ("loss", "accuracy")):
            axis.plot(epochs, curve[metric], label=f"{stage} train")
            axis.plot(epochs, curve[f"val_{metric}"], "--", label=f"{stage} validation")
        offset += len(curve["loss"])
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
