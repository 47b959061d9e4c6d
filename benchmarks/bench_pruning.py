"""Pruning table of a real fine-tuned model: sparsity vs test accuracy and compressed size.

Setup. Real Fashion-MNIST images (Debian dataset-fashion-mnist), ``--per-class`` of each of the 10 classes,
trained with the project's own recipe (:func:`training.finetune.train`: frozen EfficientNet-Lite0 + a new
head, then the last ``--blocks`` blocks fine-tuned) at ``--size`` pixels. Then :mod:`training.prune` prunes
a copy of the trained network to each ``--sparsities`` target (tfmot magnitude pruning, polynomial decay,
``--epochs`` of training each) and measures the test accuracy and the gzip size of the weights.

The table printed is the card's ``optimization.pruning``. ``--json PATH`` stores it with the settings: the
pruning lesson draws ``web/lessons/measured/pruning.json``, written this way.

    nice -n 5 .venv/bin/python benchmarks/bench_pruning.py --json web/lessons/measured/pruning.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from models import atomic
from models import training_config as config
from training import finetune, importers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--sparsities", default="0.25,0.5,0.75,0.9")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also store the table in this JSON file")
    args = parser.parse_args()
    sparsities = [float(value) for value in args.sparsities.split(",")]
    settings = config.from_dict({
        "input_size": args.size, "head": {"epochs": 40}, "augment": {"copies": 1},
        "finetune": {"enabled": True, "trainable_blocks": args.blocks, "epochs": 3},
        "pruning": {"sparsities": sparsities, "epochs": args.epochs}})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = importers.fashion_mnist(Path(tmp) / "fashion", args.per_class)
        print(f"training on {args.per_class} Fashion-MNIST images per class at {args.size} px …", flush=True)
        result = finetune.train(folder, settings)
    pruning = result.card["optimization"]["pruning"]
    seconds = time.perf_counter() - started
    base = pruning["baseline"]
    print(f"baseline: test accuracy {base['test_accuracy']:.3f}, gzip {base['gzip_bytes'] / 1e6:.2f} MB")
    print("target  measured  accuracy  drop(pp)  gzip MB  ratio")
    for row in pruning["table"]:
        print(f"{row['target_sparsity']:6.2f}  {row['measured_sparsity']:8.3f}  {row['test_accuracy']:8.3f}  "
              f"{row['accuracy_drop_pp']:8.2f}  {row['gzip_bytes'] / 1e6:7.2f}  {row['gzip_ratio']:5.2f}")
    print(f"{seconds:.0f} s")
    if args.json:
        atomic.write_json(args.json, {
            "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": f"benchmarks/bench_pruning.py --per-class {args.per_class} --size {args.size} "
                       f"--blocks {args.blocks} --sparsities {args.sparsities} --epochs {args.epochs}",
            "data": {"source": "Fashion-MNIST (Debian dataset-fashion-mnist)", "classes": result.classes,
                     "images_per_class": args.per_class, "input_size": args.size,
                     "test_images": result.card["metrics"]["test"].get("images")},
            "seconds": round(seconds, 1), "pruning": pruning})
        print(f"stored {args.json}")


if __name__ == "__main__":
    main()
