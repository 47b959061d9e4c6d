"""Data augmentation with albumentations, built from the training config's ``augment`` section.

Augmentations work on the uint8 model-size pixels (after the card's crop + resize), so every augmented
image has exactly the size the network takes and normalisation stays in :mod:`models.preprocess`.
:func:`preview` draws the original next to augmented copies: what the network sees during training.
"""
from __future__ import annotations

import albumentations as A
import numpy as np
from PIL import Image

from models.training_config import AugmentConfig


def pipeline(config: AugmentConfig, size: int, seed: int = 0) -> A.Compose:
    """The albumentations pipeline for ``size``² images; reproducible for a given ``seed``."""
    return A.Compose([
        A.HorizontalFlip(p=config.horizontal_flip),
        A.Affine(translate_percent=(-config.max_shift, config.max_shift),
                 scale=(1 - config.max_scale, 1 + config.max_scale),
                 rotate=(-config.max_rotate, config.max_rotate), border_mode=0, p=config.affine),
        A.RandomResizedCrop(size=(size, size), scale=(config.crop_min_area, 1.0), p=config.crop),
        A.ColorJitter(brightness=config.brightness, contrast=config.contrast, saturation=config.saturation,
                      hue=0.0, p=config.color_jitter),
        A.GaussianBlur(blur_limit=(3, 5), p=config.blur),
        A.GaussNoise(std_range=(0.02, 0.08), p=config.noise),
        A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.15),
                        hole_width_range=(0.05, 0.15), p=config.coarse_dropout),
    ], seed=seed)


def augment_batch(pixels: np.ndarray, transform: A.Compose) -> np.ndarray:
    """One augmented copy of every uint8 (N, size, size, 3) image."""
    return np.stack([transform(image=image)["image"] for image in pixels])


def preview(pixels: np.ndarray, config: AugmentConfig, copies: int = 8, seed: int = 0) -> Image.Image:
    """A grid image: one row per input image, the original first, then ``copies`` augmented versions."""
    transform = pipeline(config, pixels.shape[1], seed)
    rows = [np.concatenate([image] + [transform(image=image)["image"] for _ in range(copies)], axis=1)
            for image in pixels]
    return Image.fromarray(np.concatenate(rows, axis=0))
