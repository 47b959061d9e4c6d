"""Active learning on Fashion-MNIST: accuracy vs number of labels, uncertainty sampling vs random sampling.

Setup. Real Fashion-MNIST images (Debian dataset-fashion-mnist): a pool of unlabelled training images and a
separate test set, embedded once by the served default model (EfficientNet-Lite0, ONNX Runtime, the
embedding the labelling queue clusters on) and cached in ``--cache``. A logistic regression on the
embeddings plays the head trainer.

Loop. Start from ``--start`` labels (2 random per class), then add ``--step`` labels per round until
``--budget``: *random* picks from the pool at random, *margin* picks the pool images with the smallest
margin p1 − p2 (the queue's default order). Each curve is averaged over ``--seeds`` seeds.

Report: accuracy per label count for both strategies, and the label savings at equal accuracy — for each
accuracy random sampling reaches, how many labels uncertainty sampling needed for the same accuracy.

    .venv/bin/python benchmarks/bench_active.py            # ~2 min the first time (embeddings), then seconds

``--json PATH`` also stores the measurement (curves, settings, model version and ONNX sha256): the
active-learning lesson draws ``web/lessons/measured/active-learning.json``, written this way.
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from app.inference import LoadedModel
from app.labelling import uncertainty
from models import atomic
from models.preprocess import preprocess_batch
from models.registry import DEFAULT_ROOT, Registry
from training import importers


def embed(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    from PIL import Image

    out = []
    for start in range(0, len(images), 64):
        batch = [Image.fromarray(image).convert("RGB") for image in images[start:start + 64]]
        out.append(model.run(preprocess_batch(batch, model.card["input"]))[model.card["outputs"]["embedding"]])
    return np.concatenate(out).astype(np.float32)


def embeddings(cache: Path, pool: int, test: int, models_dir: str, name: str) -> dict[str, np.ndarray]:
    """Pool and test embeddings + labels, computed once per (model version, sizes) and cached."""
    registry = Registry(models_dir)
    version = registry.resolve(name)
    path = cache / f"fashion-{name}-{version}-{pool}-{test}.npz"
    if path.is_file():
        return dict(np.load(path))
    model = LoadedModel.load(registry, name, version)
    train_x, train_y = importers.fashion_mnist_arrays("train")
    test_x, test_y = importers.fashion_mnist_arrays("test")
    rng = np.random.default_rng(0)
    pool_ids, test_ids = rng.permutation(len(train_x))[:pool], rng.permutation(len(test_x))[:test]
    started = time.perf_counter()
    data = {"pool_x": embed(model, train_x[pool_ids]), "pool_y": train_y[pool_ids],
            "test_x": embed(model, test_x[test_ids]), "test_y": test_y[test_ids]}
    print(f"embedded {pool + test} images in {time.perf_counter() - started:.0f} s")
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def curve(data: dict, strategy: str, counts: list[int], seed: int) -> list[float]:
    """Test accuracy after each label count, labels chosen by ``strategy``."""
    rng = np.random.default_rng(seed)
    x, y = data["pool_x"], data["pool_y"]
    labelled = [int(rng.choice(np.flatnonzero(y == c))) for c in np.unique(y) for _ in range(2)][:counts[0]]
    accuracies = []
    for count in counts:
        while len(labelled) < count:
            rest = np.setdiff1d(np.arange(len(x)), labelled)
            need = count - len(labelled)
            if strategy == "random":
                labelled += [int(i) for i in rng.choice(rest, need, replace=False)]
            else:
                p = classifier.predict_proba(x[rest])
                scores = [uncertainty(dict(enumerate(row)), "margin") for row in p]
                labelled += [int(rest[i]) for i in np.argsort(scores)[::-1][:need]]
        classifier = LogisticRegression(C=1.0, max_iter=2000).fit(x[labelled], y[labelled])
        accuracies.append(float((classifier.predict(data["test_x"]) == data["test_y"]).mean()))
    return accuracies


def labels_needed(counts: list[int], accuracies: list[float], target: float) -> float | None:
    """Labels at which the (linearly interpolated) curve first reaches ``target``."""
    for i, accuracy in enumerate(accuracies):
        if accuracy >= target:
            if i == 0:
                return counts[0]
            a0, a1 = accuracies[i - 1], accuracy
            return counts[i - 1] + (counts[i] - counts[i - 1]) * (target - a0) / (a1 - a0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--start", type=int, default=20)
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", default="animals")
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "riim")
    parser.add_argument("--json", type=Path, help="also store the measurement in this JSON file")
    args = parser.parse_args()
    started = time.perf_counter()
    data = embeddings(args.cache, args.pool, args.test, args.models_dir, args.model)
    counts = list(range(args.start, args.budget + 1, args.step))
    curves = {strategy: np.mean([curve(data, strategy, counts, seed) for seed in range(args.seeds)], axis=0)
              for strategy in ("random", "margin")}
    print(f"Fashion-MNIST, {args.pool} pool / {args.test} test images, embeddings of {args.model}, "
          f"logistic regression, mean of {args.seeds} seeds")
    print("labels  random  margin")
    for i, count in enumerate(counts):
        print(f"{count:6d}  {curves['random'][i]:.3f}   {curves['margin'][i]:.3f}")
    print("label savings at equal accuracy (labels random needs → labels margin needs):")
    savings = []
    for i in range(1, len(counts), max(1, len(counts) // 4)):
        target = curves["random"][i]
        needed = labels_needed(counts, list(curves["margin"]), target)
        if needed is not None:
            print(f"  accuracy {target:.3f}: random {counts[i]}, margin {needed:.0f} "
                  f"({1 - needed / counts[i]:.0%} fewer labels)")
            savings.append({"accuracy": round(float(target), 4), "random": counts[i], "margin": round(needed, 1)})
    if args.json:
        store(args, counts, curves, savings, time.perf_counter() - started)


def store(args, counts: list[int], curves: dict, savings: list[dict], seconds: float) -> None:
    """The measurement as JSON (atomic write), with what it was measured on and how to repeat it."""
    registry = Registry(args.models_dir)
    version = registry.resolve(args.model)
    card = registry.card(args.model, version)
    atomic.write_json(args.json, {
        "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "benchmarks/bench_active.py " + " ".join(
            f"--{key} {getattr(args, key)}" for key in ("pool", "test", "start", "step", "budget", "seeds")),
        "model": {"name": args.model, "version": version, "onnx_sha256": card["files"]["onnx"]["sha256"]},
        "data": "Fashion-MNIST (Debian dataset-fashion-mnist), embeddings of the model, logistic regression",
        "pool": args.pool, "test": args.test, "seeds": args.seeds, "seconds": round(seconds, 1),
        "labels": counts, "accuracy": {name: [round(float(a), 4) for a in values] for name, values in curves.items()},
        "savings": savings})
    print(f"stored {args.json}")


if __name__ == "__main__":
    main()
