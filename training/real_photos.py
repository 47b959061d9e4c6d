"""Real photos that ship inside installed packages (docs/design.md §7) — for demos, tests and benchmarks.

Which files and labels: :mod:`models.real_data` (shared with the server, which serves them to the lessons);
here they are decoded into RGB :class:`Photo` objects. Nothing is downloaded; a missing package gives a
message saying how to install it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from models import real_data
from models.real_data import DARKNET_DOG, MissingDataError, imagenet_label  # noqa: F401 — re-exported


@dataclass(frozen=True)
class Photo:
    name: str  # stable identifier, e.g. "skimage/chelsea"
    label: str  # "cat", "dog" or "other"
    image: Image.Image  # RGB

    def png_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


def _decoded(files: list[real_data.PhotoFile]) -> list[Photo]:
    return [Photo(f.name, f.label, Image.open(f.path).convert("RGB")) for f in files]


def foolbox_photos() -> list[Photo]:
    """foolbox's bundled CIFAR-10 and ImageNet samples with their label as cat / dog / other."""
    return _decoded(real_data.foolbox_files())


def cat_dog_photos() -> list[Photo]:
    """Every real cat or dog photo available offline (8 on a machine set up with `make setup`)."""
    return _decoded(real_data.cat_dog_files())


def ood_photos() -> list[Photo]:
    """Real photos that show neither a cat nor a dog."""
    return _decoded(real_data.ood_files())


def photo(name: str) -> Photo:
    """One photo by name, e.g. ``photo("skimage/chelsea")``."""
    for candidate in real_data.photo_files():
        if candidate.name == name:
            return _decoded([candidate])[0]
    raise KeyError(name)
