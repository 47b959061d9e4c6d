"""The images an export is checked and calibrated on, all real and preprocessed by the card's ``input``.

Evaluation (held out): the version's own test split when its training folder is given — rebuilt with the
card's data config and seed, and refused unless its fingerprint and split hashes match the card — plus the
real photos of :mod:`training.real_photos` (cat/dog and out-of-distribution). The expected answer of a
photo whose class the model does not know is "unknown".

Calibration (int8): the version's training split; without a training folder, real photos that are *not*
in the evaluation set (foolbox's other CIFAR-10/ImageNet samples and darknet's other photos).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.preprocess import preprocess_batch
from training import data, real_photos

CALIBRATION_LIMIT = 100  # images; ONNX Runtime and TFLite calibrate one image at a time


@dataclass
class ImageSet:
    names: list[str]
    expected: list[str]  # a card label or "unknown"
    batch: np.ndarray  # float32 (N, size, size, 3), preprocessed
    counts: dict[str, int] = field(default_factory=dict)  # images per source


def training_splits(card: dict, data_dir: str | Path):
    """(dataset, split indices) of the folder this version was trained on; ``ValueError`` if it is another."""
    training = card.get("training", {})
    settings = training.get("config")
    if not training.get("trained") or not settings:
        raise ValueError(f"{card['name']}:{card['version']} was not trained on an image folder")
    dataset = data.scan(data_dir, min_per_class=settings["data"]["min_per_class"])
    splits = data.split(dataset, settings["data"]["validation_fraction"], settings["data"]["test_fraction"],
                        settings["seed"])
    if (dataset.fingerprint() != training["dataset"]["fingerprint"]
            or data.split_hashes(dataset, splits) != training["splits"]):
        raise ValueError(f"{data_dir} is not the image folder {card['name']}:{card['version']} was trained on "
                         "(its fingerprint or split differs from the card)")
    return dataset, splits


def _folder_images(dataset, indices, spec: dict) -> np.ndarray:
    return data.model_input(data.load_pixels(dataset, spec, indices), spec)


def evaluation_set(card: dict, data_dir: str | Path | None = None) -> ImageSet:
    """Held-out real images: the test split (when ``data_dir`` is given) plus the real photos."""
    labels, spec = card["labels"], card["input"]
    names, expected, batches, counts = [], [], [], {}
    if data_dir is not None:
        dataset, splits = training_splits(card, data_dir)
        test = splits["test"]
        names += [dataset.samples[i].path for i in test]
        expected += [dataset.samples[i].label for i in test]
        batches.append(_folder_images(dataset, test, spec))
        counts["test_split"] = len(test)
    photos = real_photos.cat_dog_photos() + real_photos.ood_photos()
    names += [photo.name for photo in photos]
    expected += [photo.label if photo.label in labels else "unknown" for photo in photos]
    batches.append(preprocess_batch([photo.image for photo in photos], spec))
    counts["real_photos"] = len(photos)
    return ImageSet(names, expected, np.concatenate(batches), counts)


def calibration_set(card: dict, data_dir: str | Path | None = None) -> tuple[np.ndarray, str]:
    """(preprocessed batch, description of its source) for int8 calibration, disjoint from the evaluation."""
    if data_dir is not None:
        dataset, splits = training_splits(card, data_dir)
        train = splits["train"][:: max(1, len(splits["train"]) // CALIBRATION_LIMIT)][:CALIBRATION_LIMIT]
        return _folder_images(dataset, train, card["input"]), "training split"
    images = [photo.image for photo in real_photos.foolbox_photos() if photo.label == "other"]
    from PIL import Image

    darknet = real_photos.DARKNET_DOG.parent
    images += [Image.open(path).convert("RGB") for path in sorted(darknet.glob("*.jpg")) if path != real_photos.DARKNET_DOG]
    batch = preprocess_batch(images[:CALIBRATION_LIMIT], card["input"])
    return batch, "real photos outside the evaluation set (foolbox CIFAR-10/ImageNet samples, darknet)"
