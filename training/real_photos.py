"""Real photos that ship inside installed packages (docs/design.md §7) — for demos, tests and benchmarks.

Cat/dog photos: scikit-image's ``chelsea``; foolbox's CIFAR-10 (label 3 = cat, 5 = dog) and ImageNet
(label 151–268 = a dog breed, 281–285 = a cat) samples, whose label is the last number of the file name;
Debian darknet's ``dog.jpg``. Out-of-distribution photos: scikit-image and scikit-learn samples, none of
them showing a cat or a dog. Nothing is downloaded; a missing package gives a message saying how to
install it.
"""
from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

DARKNET_DOG = Path("/usr/share/darknet/data/dog.jpg")
SKIMAGE_OOD = ("coffee", "rocket", "astronaut", "hubble_deep_field", "camera", "coins", "brick", "grass",
               "gravel", "moon")
CIFAR10_LABELS = {3: "cat", 5: "dog"}


class MissingDataError(RuntimeError):
    """A package that holds real photos is not installed."""


@dataclass(frozen=True)
class Photo:
    name: str  # stable identifier, e.g. "skimage/chelsea"
    label: str  # "cat", "dog" or "other"
    image: Image.Image  # RGB

    def png_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"package {package!r} is not installed: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _skimage(name: str) -> Image.Image:
    try:
        from skimage import data
    except ImportError:
        raise MissingDataError("scikit-image is not installed: run `make setup`") from None
    array = getattr(data, name)()
    return Image.fromarray(array).convert("RGB")


def imagenet_label(index: int) -> str:
    if 151 <= index <= 268:
        return "dog"
    if 281 <= index <= 285:
        return "cat"
    return "other"


def foolbox_photos() -> list[Photo]:
    """foolbox's bundled CIFAR-10 and ImageNet samples with their label as cat / dog / other."""
    folder = _package_dir("foolbox", "run `make setup` (installs foolbox==3.3.4 with --no-deps)") / "data"
    photos = []
    for path in sorted(folder.glob("cifar10_*.png")) + sorted(folder.glob("imagenet_*.jpg")):
        index = int(path.stem.rsplit("_", 1)[1])
        label = CIFAR10_LABELS.get(index, "other") if path.name.startswith("cifar10") else imagenet_label(index)
        photos.append(Photo(f"foolbox/{path.name}", label, Image.open(path).convert("RGB")))
    return photos


def cat_dog_photos() -> list[Photo]:
    """Every real cat or dog photo available offline (8 on a machine set up with `make setup`)."""
    photos = [Photo("skimage/chelsea", "cat", _skimage("chelsea"))]
    photos += [p for p in foolbox_photos() if p.label in ("cat", "dog")]
    if not DARKNET_DOG.is_file():
        raise MissingDataError(f"{DARKNET_DOG} is missing: `apt-get install darknet` (done by `make setup`)")
    photos.append(Photo("darknet/dog.jpg", "dog", Image.open(DARKNET_DOG).convert("RGB")))
    return photos


def ood_photos() -> list[Photo]:
    """Real photos that show neither a cat nor a dog."""
    photos = [Photo(f"skimage/{name}", "other", _skimage(name)) for name in SKIMAGE_OOD]
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise MissingDataError("scikit-learn is not installed: run `make setup`") from None
    for file_name, array in zip(("china", "flower"), load_sample_images().images):
        photos.append(Photo(f"sklearn/{file_name}", "other", Image.fromarray(array)))
    return photos


def photo(name: str) -> Photo:
    """One photo by name, e.g. ``photo("skimage/chelsea")``."""
    for candidate in cat_dog_photos() + ood_photos():
        if candidate.name == name:
            return candidate
    raise KeyError(name)
