"""Write the real bundled data of docs/design.md §7 as image folders (one sub-folder per class) to train on.

- :func:`cat_dog` — the real cat and dog photos of :mod:`training.real_photos`;
- :func:`ood` — the out-of-distribution photos (neither cat nor dog), in one class folder;
- :func:`fashion_mnist` — a subset of a chosen size of Fashion-MNIST (Debian ``dataset-fashion-mnist``,
  70,000 real 28×28 grey photos of clothes, MIT licence, read by :mod:`models.real_data`).

Each importer writes into a temporary sibling folder and renames it into place, so a folder either holds
the whole import or does not exist.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from models.real_data import FASHION_MNIST_CLASSES, fashion_mnist_arrays
from training import real_photos


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
