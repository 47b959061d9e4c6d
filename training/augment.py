"""Data augmentation with albumentations, built from the training config's ``augment`` section through
the declared recipe (:mod:`models.augment_recipe`: which transforms, in which order, with which parameters).

Augmentations work on the uint8 model-size pixels (after the card's crop + resize), so every augmented
image has exactly the size the network takes and normalisation stays in :mod:`models.preprocess`.
:func:`preview` draws the original next to augmented copies: what the network sees during training.
"""
from __future__ import annotations

import albumentations as A
import numpy as np
from PIL import Image

from models import augment_recipe
from models.training_config import AugmentConfig


def pipeline(config: AugmentConfig, size: int, seed: int = 0) -> A.Compose:
    """The albumentations pipeline for ``size``² images, built from the recipe :mod:`models.augment_recipe`
    declares (the lesson endpoint builds the same one); reproducible for a given ``seed``."""
    return augment_recipe.build(A, config, size, seed)


def augment_batch(pixels: np.ndarray, transform: A.Compose) -> np.ndarray:
    """One augmented copy of every uint8 (N, size, size, 3) image."""
    return np.stack([transform(image=image)["image"] for image in pixels])


def preview(pixels: np.ndarray, config: AugmentConfig, copies: int = 8, seed: int = 0) -> Image.Image:
    """A grid image: one row per input image, the original first, then ``copies`` augmented versions."""
    transform = pipeline(config, pixels.shape[1], seed)
    rows = [np.concatenate([image] + [transform(image=image)["image"] for _ in range(copies)], axis=1)
            for image in pixels]
    return Image.fromarray(np.concatenate(rows, axis=0))
