"""What serving and training share for the autoencoder and the GAN (numpy + Pillow only).

- :func:`to_grey` — how any photo becomes the 28×28 grey input the two models know (Fashion-MNIST and MNIST
  are already that): grey by Pillow's ``L`` (ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B), the centred
  square of the shorter side, shrunk to 28×28 by area averaging (``BOX``), values divided by 255. No
  inversion: a photo stays dark-on-light where Fashion-MNIST is light-on-black — part of why it is unusual.
- :func:`reconstruction_errors` — mean squared error per image, the anomaly score (higher = more unusual).
- :func:`latents` — the GAN's input: standard normal vectors drawn from a seed.
- :func:`png_data_uri` — a grey image as a PNG ``data:`` URI for the pages.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

SIZE = 28
MAX_SAMPLES = 64  # images one /gan/sample request may ask for
LATENT_LIMIT = 5.0  # |z| beyond this is far outside what the generator saw (a standard normal)


def to_grey(image: Image.Image, size: int = SIZE) -> np.ndarray:
    """Any PIL image → float32 (size, size) in [0, 1] (see the module docstring)."""
    grey = image.convert("L")
    side = min(grey.size)
    left, top = (grey.width - side) // 2, (grey.height - side) // 2
    square = grey.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0


def reconstruction_errors(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Mean squared error of each image (N, ...) against its reconstruction, float64."""
    diff = images.reshape(len(images), -1).astype(np.float64) - reconstructions.reshape(len(images), -1)
    return (diff ** 2).mean(axis=1)


def latents(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` standard normal latent vectors of ``dim`` numbers, reproducible from ``seed``; float32."""
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def png_data_uri(pixels: np.ndarray) -> str:
    """A (H, W) image with values in [0, 1] as a grey PNG ``data:`` URI."""
    grey = np.clip(np.rint(np.asarray(pixels, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey, "L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
