"""Named, composable image transforms for the CNN lab, saved in the model card and applied without TensorFlow.

A :class:`Pipeline` is a list of steps; each step has a ``name`` and its parameters and turns an image
array into the next one. Training builds the pipeline, *fits* the steps that learn from data (``normalize``
computes its per-channel mean and std on the training split only) and writes :meth:`Pipeline.to_card` into
the card's ``transforms`` section. Serving rebuilds it with :meth:`Pipeline.from_card` and applies the very
same steps to an uploaded image; the browser (web/static/js/lab.js) implements the same three steps from the
same card fields. Steps marked ``training_only`` (augmentation, done with albumentations in
``training/``) are recorded for the record and skipped here.

Steps, in the order the lab uses them::

    {"name": "channels", "channels": 1}                       RGB → grey (ITU-R 601 luma, as Pillow "L") or grey → RGB
    {"name": "resize", "size": 28}                             bilinear (Pillow) to size × size
    {"name": "normalize", "mean": [72.9], "std": [90.0]}       (pixel - mean) / std per channel, float32
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class TransformError(ValueError):
    """A card's ``transforms`` section names an unknown step or bad parameters."""


@dataclass
class Channels:
    """Grey (1 channel) or RGB (3 channels) uint8 (H, W, C)."""
    channels: int = 1
    name = "channels"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = image if image.ndim == 3 else image[..., None]
        if image.shape[-1] == self.channels:
            return image
        if self.channels == 1:
            grey = np.rint(image[..., :3].astype(np.float32) @ LUMA)
            return np.clip(grey, 0, 255).astype(np.uint8)[..., None]
        return np.repeat(image[..., :1], 3, axis=-1)

    def params(self) -> dict:
        return {"channels": self.channels}


@dataclass
class Resize:
    """Bilinear resize to ``size`` × ``size`` (the whole image: lab datasets are already square)."""
    size: int = 28
    name = "resize"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.shape[0] == image.shape[1] == self.size:
            return image
        planes = [np.asarray(Image.fromarray(image[..., c]).resize((self.size, self.size), Image.Resampling.BILINEAR))
                  for c in range(image.shape[-1])]
        return np.stack(planes, axis=-1)

    def params(self) -> dict:
        return {"size": self.size}


@dataclass
class Normalize:
    """``(pixel - mean) / std`` per channel; :meth:`fit` learns mean and std from training images."""
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    name = "normalize"

    def fit(self, images: np.ndarray) -> Normalize:
        """Per-channel statistics of a uint8 (N, H, W, C) batch: the training split, never validation or test."""
        flat = images.reshape(-1, images.shape[-1]).astype(np.float64)
        self.mean = [round(float(v), 4) for v in flat.mean(axis=0)]
        self.std = [round(max(float(v), 1e-3), 4) for v in flat.std(axis=0)]
        return self

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if not self.mean:
            raise TransformError("normalize has not been fitted: call fit() on the training images first")
        return (image.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)

    def params(self) -> dict:
        return {"mean": self.mean, "std": self.std}


STEPS = {step.name: step for step in (Channels, Resize, Normalize)}


class Pipeline:
    """Steps applied in order; ``training_only`` entries are kept in the card but not applied here."""

    def __init__(self, steps: list, training_only: list[dict] | None = None):
        self.steps = steps
        self.training_only = training_only or []

    def __call__(self, image: np.ndarray) -> np.ndarray:
        for step in self.steps:
            image = step(image)
        return image

    def batch(self, images: np.ndarray) -> np.ndarray:
        """The pipeline over a batch (N, H, W[, C]) → float32 (N, size, size, C)."""
        return np.stack([self(image) for image in images])

    def until(self, name: str) -> Pipeline:
        """The steps before the step called ``name`` (e.g. what to fit ``normalize`` on)."""
        names = [step.name for step in self.steps]
        return Pipeline(self.steps[:names.index(name)])

    def get(self, name: str):
        return next(step for step in self.steps if step.name == name)

    def strip(self, image: np.ndarray) -> list[tuple[str, dict, np.ndarray]]:
        """``(name, params, output)`` after each step, starting with the input itself."""
        out = [("input", {}, image)]
        for step in self.steps:
            image = step(image)
            out.append((step.name, step.params(), image))
        return out

    def to_card(self) -> list[dict]:
        return [{"name": step.name, **step.params()} for step in self.steps] + self.training_only

    @classmethod
    def from_card(cls, entries: list[dict]) -> Pipeline:
        steps, skipped = [], []
        for entry in entries:
            if entry.get("training_only"):
                skipped.append(entry)
                continue
            kind = STEPS.get(entry.get("name"))
            if kind is None:
                raise TransformError(f"unknown transform {entry.get('name')!r}; known: {', '.join(STEPS)}")
            try:
                steps.append(kind(**{k: v for k, v in entry.items() if k != "name"}))
            except TypeError as error:
                raise TransformError(f"transform {entry['name']}: {error}") from None
        return cls(steps, skipped)


def to_display(values: np.ndarray) -> np.ndarray:
    """Any step's output as uint8 for a picture: uint8 as is, floats stretched from their min to their max."""
    if values.dtype == np.uint8:
        return values
    low, high = float(values.min()), float(values.max())
    return np.clip(np.rint((values - low) / max(high - low, 1e-6) * 255), 0, 255).astype(np.uint8)
