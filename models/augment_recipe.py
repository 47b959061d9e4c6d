"""The data-augmentation recipe, declared once: which albumentations transforms, in which order, with which
parameters, all taken from the training config's ``augment`` section.

:func:`steps` is the recipe as data (transform names and arguments); :func:`build` turns it into an
albumentations pipeline. This module never imports albumentations — the caller passes the module in — so
training (:mod:`training.augment`) and the server (the data-augmentation lesson's endpoint) build the very
same pipeline from the same steps while ``models/`` stays free of heavy dependencies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from models.training_config import AugmentConfig


@dataclass(frozen=True)
class Step:
    name: str  # the control's key, e.g. "affine"
    transform: str  # the albumentations class, e.g. "Affine"
    probability: str  # the AugmentConfig field that holds its probability
    settings: tuple[str, ...]  # the other AugmentConfig fields it reads (its magnitudes)
    args: dict = field(default_factory=dict)  # keyword arguments for the transform (without ``p``)


def steps(config: AugmentConfig, size: int) -> list[Step]:
    """The recipe for ``size``² uint8 images, in the order the transforms run."""
    c = config
    return [
        Step("horizontal_flip", "HorizontalFlip", "horizontal_flip", ()),
        Step("affine", "Affine", "affine", ("max_shift", "max_scale", "max_rotate"),
             {"translate_percent": (-c.max_shift, c.max_shift), "scale": (1 - c.max_scale, 1 + c.max_scale),
              "rotate": (-c.max_rotate, c.max_rotate), "border_mode": 0}),
        Step("crop", "RandomResizedCrop", "crop", ("crop_min_area",),
             {"size": (size, size), "scale": (c.crop_min_area, 1.0)}),
        Step("color_jitter", "ColorJitter", "color_jitter", ("brightness", "contrast", "saturation"),
             {"brightness": c.brightness, "contrast": c.contrast, "saturation": c.saturation, "hue": 0.0}),
        Step("blur", "GaussianBlur", "blur", (), {"blur_limit": (3, 5)}),
        Step("noise", "GaussNoise", "noise", (), {"std_range": (0.02, 0.08)}),
        Step("coarse_dropout", "CoarseDropout", "coarse_dropout", (),
             {"num_holes_range": (1, 4), "hole_height_range": (0.05, 0.15), "hole_width_range": (0.05, 0.15)}),
    ]


def build(albumentations, config: AugmentConfig, size: int, seed: int = 0, record: bool = False):
    """The albumentations ``Compose`` of :func:`steps`; reproducible for a given ``seed``.
    ``albumentations`` is the imported module; with ``record`` each result also lists the transforms that
    fired (``applied_transforms``), which does not change the images."""
    return albumentations.Compose(
        [getattr(albumentations, step.transform)(**step.args, p=getattr(config, step.probability))
         for step in steps(config, size)], seed=seed, save_applied_params=record)
