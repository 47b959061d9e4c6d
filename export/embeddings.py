"""Embeddings of grey 28×28 images (Fashion-MNIST, digits) from a version's served ONNX model, cached.

Each image goes through exactly what serving does with an upload: grey → RGB, then
:func:`models.preprocess.preprocess` with the card's ``input`` (centre crop, bilinear resize to 224², mean/std).
The cache is one ``.npz`` per (model, version, data set), written atomically, so a second run costs nothing.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from models import atomic
from models.preprocess import preprocess
from models.registry import Registry

BATCH = 32


def onnx_session(registry: Registry, name: str, version: str | None = None):
    """An ONNX Runtime session on the version's ``model.onnx`` (fp32, what serving runs)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(registry.file(name, version, "onnx")), providers=["CPUExecutionProvider"])


def run_images(session, card: dict, images: list[Image.Image], on_batch=None) -> dict[str, np.ndarray]:
    """The ``embedding`` and ``probabilities`` outputs (card names) for RGB PIL images, in batches."""
    names = [card["outputs"]["embedding"], card["outputs"]["probabilities"]]
    parts = []
    for start in range(0, len(images), BATCH):
        batch = np.stack([preprocess(image, card["input"]) for image in images[start:start + BATCH]])
        parts.append(session.run(names, {"image": batch}))
        if on_batch is not None:
            on_batch(min(start + BATCH, len(images)), len(images))
    return {key: np.concatenate([part[k] for part in parts]).astype(np.float32)
            for k, key in enumerate(("embedding", "probabilities"))}


def grey_to_rgb(pixels: np.ndarray) -> list[Image.Image]:
    """(N, 28, 28) uint8 grey → RGB PIL images (the three channels equal), as an uploaded PNG would decode."""
    return [Image.fromarray(np.asarray(p, dtype=np.uint8), "L").convert("RGB") for p in pixels]


def fashion_subset(source: str, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random Fashion-MNIST images of ``source`` (train/test) and their labels, fixed by ``seed`` —
    the same rows for every user of the cache."""
    from training.importers import fashion_mnist_arrays

    images, labels = fashion_mnist_arrays(source)
    rows = np.sort(np.random.default_rng(seed).permutation(len(images))[:count])
    return images[rows], labels[rows].astype(int)


def fashion_embeddings(registry: Registry, name: str, source: str, count: int, cache_dir: Path, on_batch=None):
    """(pixels, labels, outputs) of :func:`fashion_subset` embedded by ``name``, through the cache."""
    pixels, labels = fashion_subset(source, count)
    return pixels, labels, cached_embeddings(registry, name, pixels, f"fashion-{source}-{count}", cache_dir, on_batch)


def cached_embeddings(registry: Registry, name: str, pixels: np.ndarray, key: str, cache_dir: Path,
                      on_batch=None) -> dict[str, np.ndarray]:
    """Embeddings of ``pixels`` (N, 28, 28 uint8) by the current version of ``name``; ``key`` names the data
    set (e.g. ``fashion-train-5000-seed0``) in the cache file together with the model version."""
    version = registry.resolve(name)
    path = Path(cache_dir) / f"embeddings-{name}-{version}-{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            if stored["embedding"].shape[0] == len(pixels):
                return {k: stored[k] for k in ("embedding", "probabilities")}
    card = registry.card(name, version)
    outputs = run_images(onnx_session(registry, name, version), card, grey_to_rgb(pixels), on_batch)
    buffer = io.BytesIO()
    np.savez(buffer, **outputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, buffer.getvalue())
    return outputs
