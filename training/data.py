"""Image-folder datasets: scan and validate a folder (one sub-folder per class), split it without leakage.

Checks, in the order a student meets them: the folder exists and has at least two class folders; every
file is decoded (corrupt or unsupported files are skipped and listed in the report, not fatal); files with
identical content (sha256) are one *group* — a group is never split across train / validation / test, and
a group filed under two classes is reported as a conflict and left out; every class keeps at least
``min_per_class`` unique images. The dataset fingerprint hashes (label, content hash) pairs, so renaming
files keeps it and changing a pixel changes it.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.preprocess import ImageDecodeError, load_image, normalize, to_model_pixels

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
SPLITS = ("train", "validation", "test")


class DatasetError(ValueError):
    """The folder cannot be used for training; the message says why and what to do."""


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the dataset root, e.g. "cat/chelsea.png"
    label: str
    sha256: str


@dataclass
class Dataset:
    root: Path
    classes: list[str]
    samples: list[Sample]
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}
    duplicates: list[list[str]] = field(default_factory=list)  # groups of paths with identical content

    @property
    def labels(self) -> np.ndarray:
        """Class index of every sample."""
        return np.array([self.classes.index(s.label) for s in self.samples])

    @property
    def groups(self) -> np.ndarray:
        """Group id of every sample: identical files share one (for group-aware splits)."""
        ids = {digest: i for i, digest in enumerate(dict.fromkeys(s.sha256 for s in self.samples))}
        return np.array([ids[s.sha256] for s in self.samples])

    def fingerprint(self) -> str:
        pairs = sorted(f"{s.label}\t{s.sha256}" for s in self.samples)
        return hashlib.sha256("\n".join(pairs).encode()).hexdigest()

    def counts(self) -> dict[str, int]:
        found = Counter(s.label for s in self.samples)
        return {label: found[label] for label in self.classes}

    def report(self) -> dict:
        """What the loader found, for logs and the model card."""
        return {"root": str(self.root), "classes": self.counts(), "images": len(self.samples),
                "fingerprint": self.fingerprint(), "skipped": self.skipped, "duplicates": self.duplicates}


def scan(root: str | Path, min_per_class: int = 5) -> Dataset:
    """Read and validate an image folder; raises :class:`DatasetError` when it cannot be used."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; give a folder with one sub-folder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(f"{root} has {len(classes)} class folder(s) ({', '.join(classes) or 'none'}); "
                           "a classifier needs at least 2, one sub-folder per class")
    samples, skipped = [], []
    for label in classes:
        for path in sorted(p for p in (root / label).rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append({"path": relative, "reason": f"unsupported file type {path.suffix or '(none)'}"})
                continue
            data = path.read_bytes()
            try:
                load_image(data)
            except ImageDecodeError as error:
                skipped.append({"path": relative, "reason": str(error)})
                continue
            samples.append(Sample(relative, label, hashlib.sha256(data).hexdigest()))

    by_hash = defaultdict(list)
    for sample in samples:
        by_hash[sample.sha256].append(sample)
    duplicates = [[s.path for s in group] for group in by_hash.values() if len(group) > 1]
    conflicts = {digest for digest, group in by_hash.items() if len({s.label for s in group}) > 1}
    for digest in conflicts:
        for sample in by_hash[digest]:
            skipped.append({"path": sample.path, "reason": "identical image filed under several classes"})
    samples = [s for s in samples if s.sha256 not in conflicts]

    unique = Counter(s.label for s in {s.sha256: s for s in samples}.values())
    small = {label: unique[label] for label in classes if unique[label] < min_per_class}
    if small:
        raise DatasetError("too few distinct images in " + ", ".join(f"{k} ({v})" for k, v in small.items())
                           + f"; every class needs at least {min_per_class}")
    return Dataset(root, classes, samples, skipped, duplicates)


def split(dataset: Dataset, validation_fraction: float, test_fraction: float, seed: int = 0) -> dict[str, list[int]]:
    """Stratified split into sample indices per split; duplicate groups stay in one split.

    Each class's groups are shuffled with ``seed``; validation and test each get
    ``round(fraction × groups)`` groups, at least one when the fraction is positive.
    """
    rng = np.random.default_rng(seed)
    groups, labels = dataset.groups, dataset.labels
    result = {name: [] for name in SPLITS}
    for label in range(len(dataset.classes)):
        ids = np.unique(groups[labels == label])
        rng.shuffle(ids)
        n_val, n_test = (max(1, round(f * len(ids))) if f > 0 else 0
                         for f in (validation_fraction, test_fraction))
        if n_val + n_test >= len(ids):
            raise DatasetError(f"class {dataset.classes[label]} has {len(ids)} distinct images: too few to "
                               "hold out validation and test images and still train")
        chosen = {"validation": ids[:n_val], "test": ids[n_val:n_val + n_test], "train": ids[n_val + n_test:]}
        for name, group_ids in chosen.items():
            result[name] += np.flatnonzero(np.isin(groups, group_ids) & (labels == label)).tolist()
    return {name: sorted(indices) for name, indices in result.items()}


def split_hashes(dataset: Dataset, indices: dict[str, list[int]]) -> dict[str, dict]:
    """Per split: image count and a hash of its sorted file list (for the card)."""
    out = {}
    for name, ids in indices.items():
        paths = sorted(dataset.samples[i].path for i in ids)
        out[name] = {"images": len(paths), "sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest()}
    return out


def load_pixels(dataset: Dataset, spec: dict, indices=None) -> np.ndarray:
    """uint8 (N, size, size, 3): each image decoded and cropped/resized as the card's ``input`` says."""
    chosen = range(len(dataset.samples)) if indices is None else indices
    pixels = np.empty((len(chosen), spec["size"], spec["size"], 3), dtype=np.uint8)
    for row, index in enumerate(chosen):
        pixels[row] = to_model_pixels(load_image(dataset.root / dataset.samples[index].path), spec)
    return pixels


def model_input(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 model-size pixels → the normalised float32 batch the network takes."""
    return normalize(pixels, spec)
