"""Benchmark: the training recipe on real Fashion-MNIST, and leave-one-out on the real cat/dog photos.

Fashion-MNIST (Debian ``dataset-fashion-mnist``): ``--train-per-class`` training and ``--val-per-class``
validation images per class from the training file plus ``--test-per-class`` held-out images, one run of
``riim train``'s recipe with stage 1 (head on cached embeddings) → 5-fold CV of stage 1 → stage 2 (top
blocks) → pruning at 50 % → QAT. It prints head-only and fine-tuned held-out accuracy, CV mean ± std,
pruning drop and gzip ratio, QAT vs float, and the wall time of each stage ("to_finetuned": data +
features + head + fine-tuning, what a plain ``riim train`` of this config costs). With ``--export`` the
model is also published to a scratch registry and exported, and the parity table (PTQ int8 vs QAT int8
among the formats) is printed. Then leave-one-out of the head-only recipe (with augmentation) on every real
cat/dog photo available offline. Every stage prints its time when it ends, each epoch its metrics, and the
held-out figures are printed as soon as they are known. ``--quick`` stops at the fine-tuned model (no CV,
pruning, QAT or cat/dog): the "data → fine-tuned" figure alone. Usage::

    .venv/bin/python benchmarks/bench_train.py [--train-per-class 1000] [--input-size 128] [--quick]
        [--finetune-epochs 4] [--finetune-learning-rate 3e-4] [--export] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from models import training_config as config
from training import finetune, importers
from training.progress import Progress

FASHION = {
    "head": {"epochs": 60, "patience": 6},
    "augment": {"copies": 2, "horizontal_flip": 0.5, "max_rotate": 8.0, "color_jitter": 0.3, "blur": 0.0,
                "noise": 0.0},
    "finetune": {"enabled": True, "trainable_blocks": 4, "epochs": 4, "learning_rate": 3e-4, "patience": 3},
    "crossval": {"folds": 5},
    "pruning": {"sparsities": [0.5], "epochs": 1},
    "qat": {"enabled": True, "epochs": 1},
}
CAT_DOG = {"input_size": 224, "data": {"min_per_class": 2, "validation_fraction": 0.0, "test_fraction": 0.0},
           "augment": {"copies": 10}, "head": {"epochs": 30}, "crossval": {"leave_one_out": True}}


class PrintedProgress(Progress):
    """Prints each stage's time when it ends, each epoch's metrics, a line per tenth of an image stage, and
    the held-out figures ``train`` reports (``*_accuracy`` fields) as soon as they are known."""

    def __init__(self):
        super().__init__(bars=False)
        self._tenth = 0

    def update(self, **fields) -> None:
        super().update(**fields)
        for key, value in fields.items():
            if key.endswith("test_accuracy") or key.startswith("crossval"):
                print(f"  {key}: {value}", flush=True)

    def stage(self, name, total=None, unit="epoch") -> None:
        self._tenth = 0
        if self.state.get("stage"):
            seconds = time.monotonic() - self._stage_started
            print(f"[{time.monotonic() - self.started:7.1f} s] {self.state['stage']}: {seconds:.1f} s", flush=True)
        super().stage(name, total, unit)

    def step(self, done, total, **metrics) -> None:
        super().step(done, total, **metrics)
        if metrics:
            print(f"    {self.state['stage']} {done}/{total}: " + ", ".join(
                f"{k} {float(v):.4f}" for k, v in metrics.items()), flush=True)
        elif done * 10 // total > self._tenth or done == total:
            self._tenth = done * 10 // total
            left = self.state["eta_seconds"] or 0
            print(f"    {self.state['stage']}: {done}/{total} ({left:.0f} s left)", flush=True)


def fashion_folder(root: Path, train: int, val: int, test: int) -> tuple[Path, dict]:
    """One folder of train + validation + test images per class, and the split fractions that carve them."""
    folder = importers.fashion_mnist(root / "fashion", train + val + test)
    total = train + val + test
    return folder, {"validation_fraction": val / total, "test_fraction": test / total}


def export_report(result: finetune.Result, folder: Path, store: Path) -> dict:
    """Publish ``result`` to a scratch registry, export every format (QAT too) and print the parity table."""
    from export.exporter import export_version
    from models.card import parity_table
    from models.registry import Registry

    registry = Registry(store)
    version = finetune.publish(registry, "fashion", result)
    started = time.perf_counter()
    card = export_version(registry, "fashion", version, folder, repeats=10, log=lambda _: None)
    print(parity_table(card["parity"]["report"]), f"\nexported in {time.perf_counter() - started:.0f} s", flush=True)
    return {fmt: {k: row[k] for k in ("bytes", "top1_agreement", "accuracy")}
            for fmt, row in card["parity"]["report"]["formats"].items()}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--finetune-epochs", type=int, default=FASHION["finetune"]["epochs"])
    parser.add_argument("--finetune-learning-rate", type=float, default=FASHION["finetune"]["learning_rate"])
    parser.add_argument("--quick", action="store_true",
                        help="Only data → fine-tuned: no cross-validation, pruning, QAT, cat/dog.")
    parser.add_argument("--export", action="store_true", help="Also publish, export and print the parity table.")
    parser.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args()

    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder, fractions = fashion_folder(Path(tmp), args.train_per_class, args.val_per_class, args.test_per_class)
        recipe = {**FASHION, "input_size": args.input_size, "data": fractions,
                  "finetune": {**FASHION["finetune"], "epochs": args.finetune_epochs,
                               "learning_rate": args.finetune_learning_rate}}
        if args.quick:
            recipe = {k: v for k, v in recipe.items() if k not in ("crossval", "pruning", "qat")}
        settings = config.from_dict(recipe)
        started = time.perf_counter()
        print(f"Fashion-MNIST {args.train_per_class}/{args.val_per_class}/{args.test_per_class} per class, "
              f"{args.input_size}²; load average {os.getloadavg()[0]:.2f}", flush=True)
        result = finetune.train(folder, settings, progress=PrintedProgress())
        metrics, optimization = result.card["metrics"], result.card["optimization"]
        report["fashion_mnist"] = {
            "images_per_class": {"train": args.train_per_class, "validation": args.val_per_class,
                                 "test": args.test_per_class},
            "input_size": args.input_size,
            "head_only_test_accuracy": metrics["head_only_test"]["accuracy"],
            "finetuned_test_accuracy": metrics["test"]["accuracy"],
            "finetuned_test_macro_f1": metrics["test"]["macro_f1"],
            "verdict": {k: metrics["diagnosis"][k] for k in ("verdict", "reason")},
            "seconds": {**result.card["training"]["seconds"], "to_finetuned": round(sum(
                result.card["training"]["seconds"].get(k, 0) for k in ("data", "features", "head", "finetune")), 1)},
            "wall_seconds": round(time.perf_counter() - started, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        if not args.quick:
            pruning = optimization["pruning"]["table"][0]
            report["fashion_mnist"] |= {
                "crossval_5fold_accuracy": metrics["crossval"]["accuracy"],
                "crossval_5fold_macro_f1": metrics["crossval"]["macro_f1"],
                "pruning_50": {k: pruning[k] for k in ("measured_sparsity", "test_accuracy", "accuracy_drop_pp",
                                                       "gzip_bytes", "gzip_ratio")},
                "qat": {k: optimization["qat"][k] for k in ("float_test_accuracy", "qat_test_accuracy",
                                                             "accuracy_drop_pp")}}
        print(json.dumps(report["fashion_mnist"], indent=2), flush=True)
        if args.export:
            report["fashion_mnist"]["parity"] = export_report(result, folder, Path(tmp) / "store")
        if not args.quick:
            photos = importers.cat_dog(Path(tmp) / "catdog")
            started = time.perf_counter()
            loo = finetune.train(photos, config.from_dict(CAT_DOG)).card["metrics"]["crossval"]["out_of_fold"]
            report["cat_dog_leave_one_out"] = {"images": loo["images"], "accuracy": loo["accuracy"],
                                               "confusion": loo["confusion"],
                                               "wall_seconds": round(time.perf_counter() - started, 1)}
            print(json.dumps(report["cat_dog_leave_one_out"], indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
