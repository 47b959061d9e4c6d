"""The CNN lab's datasets as uint8 arrays: Fashion-MNIST (default, installed by Debian), the official CIFAR-10
"python version" batch files from a folder the user has, or any image folder (one sub-folder per class).

Every loader returns a :class:`LabData`: the source's own train / test split (an image folder is split by
:func:`training.data.split`, duplicates never crossing), plus a stratified validation part held out from
the training split — statistics (normalisation) and early stopping only ever see the training part.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import data as folder_data
from training.importers import FASHION_MNIST_CLASSES, fashion_mnist_arrays

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR10_META = "batches.meta"


@dataclass
class LabData:
    source: str
    classes: list[str]
    x_train: np.ndarray  # uint8 (N, H, W, C)
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def _limit(x, y, count: int, seed: int):
    """A stratified subset of ``count`` images (all when ``count`` is 0 or not smaller)."""
    if not count or count >= len(y):
        return x, y
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        ids = np.flatnonzero(y == label)
        keep.append(rng.permutation(ids)[:max(1, round(count * len(ids) / len(y)))])
    keep = np.sort(np.concatenate(keep))
    return x[keep], y[keep]


def hold_out(x, y, fraction: float, seed: int):
    """Stratified (train, validation) parts of the training split."""
    rng = np.random.default_rng(seed + 1)
    val = []
    for label in np.unique(y):
        ids = rng.permutation(np.flatnonzero(y == label))
        val.append(ids[:max(1, round(fraction * len(ids)))])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(y)), val)
    return (x[train], y[train]), (x[val], y[val])


def _finish(source, classes, train, test, limits, validation_fraction: float, seed: int) -> LabData:
    x_train, y_train = _limit(*train, limits.train_images, seed)
    x_test, y_test = _limit(*test, limits.test_images, seed)
    (x_train, y_train), (x_val, y_val) = hold_out(x_train, y_train, validation_fraction, seed)
    return LabData(source, list(classes), x_train, y_train.astype(np.int64), x_val, y_val.astype(np.int64),
                   x_test, y_test.astype(np.int64))


def fashion_mnist(limits, validation_fraction: float, seed: int = 0) -> LabData:
    """Fashion-MNIST's 60,000 / 10,000 split, grey 28 × 28 × 1."""
    train, test = (fashion_mnist_arrays(name) for name in ("train", "test"))
    return _finish("fashion-mnist", FASHION_MNIST_CLASSES, (train[0][..., None], train[1]),
                   (test[0][..., None], test[1]), limits, validation_fraction, seed)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: a pickled dict with ``data`` (N, 3072: the red plane, green, blue, each
    32 × 32 row by row) and ``labels``; returned as uint8 (N, 32, 32, 3) and int labels."""
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    pixels = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return pixels, np.asarray(batch[b"labels"], dtype=np.int64)


def cifar10(folder: str | Path, limits, validation_fraction: float, seed: int = 0) -> LabData:
    """The official "CIFAR-10 python version" folder (cifar-10-batches-py): data_batch_1…5, test_batch,
    batches.meta. Only pickles of that format are read: use it with files from a source you trust."""
    folder = Path(folder)
    missing = [name for name in (*CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_META) if not (folder / name).is_file()]
    if missing:
        raise folder_data.DatasetError(f"{folder} is not a CIFAR-10 python folder: missing {', '.join(missing)}")
    with open(folder / CIFAR10_META, "rb") as handle:
        names = [name.decode() for name in pickle.load(handle, encoding="bytes")[b"label_names"]]
    parts = [read_cifar_batch(folder / name) for name in CIFAR10_TRAIN]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return _finish("cifar-10", names, train, read_cifar_batch(folder / CIFAR10_TEST), limits, validation_fraction,
                   seed)


def image_folder(folder: str | Path, size: int, limits, validation_fraction: float, seed: int = 0) -> LabData:
    """Any image folder: validated and split by :mod:`training.data` (test = 15 %), RGB resized to ``size``."""
    dataset = folder_data.scan(folder)
    splits = folder_data.split(dataset, 0.0, 0.15, seed)
    spec = {"size": size, "crop_fraction": 1.0}
    pixels, labels = folder_data.load_pixels(dataset, spec), dataset.labels
    train, test = (np.array(splits[name], dtype=int) for name in ("train", "test"))
    return _finish(f"folder:{Path(folder).name}", dataset.classes, (pixels[train], labels[train]),
                   (pixels[test], labels[test]), limits, validation_fraction, seed)


def load(source: str, limits, validation_fraction: float, seed: int = 0, size: int = 32) -> LabData:
    """``fashion-mnist``, ``cifar10:<folder>`` or ``folder:<folder>``."""
    kind, _, path = source.partition(":")
    if kind == "fashion-mnist" and not path:
        return fashion_mnist(limits, validation_fraction, seed)
    if kind == "cifar10" and path:
        return cifar10(path, limits, validation_fraction, seed)
    if kind == "folder" and path:
        return image_folder(path, size, limits, validation_fraction, seed)
    raise folder_data.DatasetError(f"unknown data source {source!r}: use fashion-mnist, cifar10:<folder> or "
                                   "folder:<folder>")
