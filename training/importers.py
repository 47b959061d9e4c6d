"""Write the real bundled data of docs/design.md §7 as image folders (one sub-folder per class) to train on.

- :func:`cat_dog` — the real cat and dog photos of :mod:`training.real_photos`;
- :func:`ood` — the out-of-distribution photos (neither cat nor dog), in one class folder;
- :func:`fashion_mnist` — a subset of a chosen size of Fashion-MNIST (Debian ``dataset-fashion-mnist``,
  70,000 real 28×28 grey photos of clothes, MIT licence).

Each importer writes into a temporary sibling folder and renames it into place, so a folder either holds
the whole import or does not exist.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from training import real_photos

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                         "ankle_boot")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@contextlib.contextmanager
def _atomic_folder(dest: str | Path):
    """Yield a temporary folder that is renamed to ``dest`` on success; ``dest`` must not exist yet."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; choose a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        yield staging
        os.rename(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_photos(dest: Path, photos) -> Path:
    with _atomic_folder(dest) as staging:
        for photo in photos:
            folder = staging / photo.label
            folder.mkdir(exist_ok=True)
            photo.image.save(folder / (photo.name.replace("/", "_").rsplit(".", 1)[0] + ".png"))
    return Path(dest)


def cat_dog(dest: str | Path) -> Path:
    """``dest/cat``, ``dest/dog``: every real cat/dog photo available offline."""
    return _write_photos(Path(dest), real_photos.cat_dog_photos())


def ood(dest: str | Path) -> Path:
    """``dest/other``: real photos that show neither a cat nor a dog."""
    return _write_photos(Path(dest), real_photos.ood_photos())


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: big-endian header of dimension sizes, then uint8 data)."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist_arrays(source: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,)) of the ``"train"`` (60,000) or ``"test"`` (10,000) file."""
    images_file, labels_file = FASHION_MNIST_FILES[source]
    if not (FASHION_MNIST_DIR / images_file).is_file():
        raise real_photos.MissingDataError(
            f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist "
            "(done by `make setup`)")
    return read_idx(FASHION_MNIST_DIR / images_file), read_idx(FASHION_MNIST_DIR / labels_file)


def fashion_mnist(dest: str | Path, per_class: int, classes=None, source: str = "train", offset: int = 0) -> Path:
    """Write ``per_class`` images of each class (all 10 by default) from the ``source`` file as PNGs.

    Images are taken in file order, skipping the first ``offset`` of each class, so two calls with
    different offsets give disjoint sets (e.g. training and extra evaluation images).
    """
    classes = list(classes or FASHION_MNIST_CLASSES)
    unknown = sorted(set(classes) - set(FASHION_MNIST_CLASSES))
    if unknown:
        raise ValueError(f"unknown Fashion-MNIST classes {unknown}; choose from {', '.join(FASHION_MNIST_CLASSES)}")
    images, labels = fashion_mnist_arrays(source)
    with _atomic_folder(dest) as staging:
        for name in classes:
            rows = np.flatnonzero(labels == FASHION_MNIST_CLASSES.index(name))[offset:offset + per_class]
            if len(rows) < per_class:
                raise ValueError(f"Fashion-MNIST {source} has only {len(rows)} {name} images after {offset}")
            (staging / name).mkdir()
            for row in rows:
                Image.fromarray(images[row], "L").save(staging / name / f"{source}_{row:05d}.png")
    return Path(dest)
