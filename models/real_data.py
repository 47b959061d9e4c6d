"""Real data that ships inside installed packages (docs/design.md §7), located without importing them.

Training, tests and the lessons' endpoints read the same files from here:

- :func:`photo_files` — real photos labelled cat / dog / other: scikit-image's samples (``chelsea`` is a cat,
  the rest show neither), foolbox's CIFAR-10 (label 3 = cat, 5 = dog) and ImageNet (151–268 = a dog breed,
  281–285 = a cat) samples, whose label is the last number of the file name, Debian darknet's ``dog.jpg``
  and scikit-learn's ``china`` and ``flower``;
- :func:`fashion_mnist_arrays` — Debian ``dataset-fashion-mnist``: 70,000 real 28×28 grey photos of clothes
  (MIT licence) in the IDX format.

Nothing is downloaded; a missing package raises :class:`MissingDataError` saying how to install it.
"""
from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DARKNET_DOG = Path("/usr/share/darknet/data/dog.jpg")
SKIMAGE_CAT = "chelsea.png"
SKIMAGE_OOD = ("coffee.png", "rocket.jpg", "astronaut.png", "hubble_deep_field.jpg", "camera.png", "coins.png",
               "brick.png", "grass.png", "gravel.png", "moon.png")
SKLEARN_OOD = ("china.jpg", "flower.jpg")
CIFAR10_LABELS = {3: "cat", 5: "dog"}

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                         "ankle_boot")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


class MissingDataError(RuntimeError):
    """A package that holds real data is not installed; the message says how to install it."""


@dataclass(frozen=True)
class PhotoFile:
    name: str  # stable identifier, e.g. "skimage/chelsea"
    label: str  # "cat", "dog" or "other"
    path: Path


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"package {package!r} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def imagenet_label(index: int) -> str:
    if 151 <= index <= 268:
        return "dog"
    if 281 <= index <= 285:
        return "cat"
    return "other"


def foolbox_files() -> list[PhotoFile]:
    """foolbox's bundled CIFAR-10 and ImageNet samples, labelled cat / dog / other."""
    folder = package_dir("foolbox", "run `make setup` (installs foolbox==3.3.4 with --no-deps)") / "data"
    files = []
    for path in sorted(folder.glob("cifar10_*.png")) + sorted(folder.glob("imagenet_*.jpg")):
        index = int(path.stem.rsplit("_", 1)[1])
        label = CIFAR10_LABELS.get(index, "other") if path.name.startswith("cifar10") else imagenet_label(index)
        files.append(PhotoFile(f"foolbox/{path.name}", label, path))
    return files


def _named(prefix: str, folder: Path, file_name: str, label: str) -> PhotoFile:
    return PhotoFile(f"{prefix}/{file_name.rsplit('.', 1)[0]}", label, folder / file_name)


def cat_dog_files() -> list[PhotoFile]:
    """Every real cat or dog photo available offline (8 on a machine set up with `make setup`)."""
    skimage = package_dir("skimage", "run `make setup`") / "data"
    files = [_named("skimage", skimage, SKIMAGE_CAT, "cat")]
    files += [f for f in foolbox_files() if f.label in ("cat", "dog")]
    if not DARKNET_DOG.is_file():
        raise MissingDataError(f"{DARKNET_DOG} is missing: `apt-get install darknet` (done by `make setup`)")
    files.append(PhotoFile("darknet/dog.jpg", "dog", DARKNET_DOG))
    return files


def ood_files() -> list[PhotoFile]:
    """Real photos that show neither a cat nor a dog."""
    skimage = package_dir("skimage", "run `make setup`") / "data"
    sklearn = package_dir("sklearn", "run `make setup`") / "datasets" / "images"
    return ([_named("skimage", skimage, name, "other") for name in SKIMAGE_OOD]
            + [_named("sklearn", sklearn, name, "other") for name in SKLEARN_OOD])


def photo_files() -> list[PhotoFile]:
    """The cat and dog photos, then the out-of-distribution ones."""
    return cat_dog_files() + ood_files()


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
        raise MissingDataError(
            f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist "
            "(done by `make setup`)")
    return read_idx(FASHION_MNIST_DIR / images_file), read_idx(FASHION_MNIST_DIR / labels_file)
