"""tf_keras model → TFLite flatbuffers: fp32, dynamic-range (int8 weights), full-integer int8, QAT int8.

Full-integer int8 calibrates activations on a representative batch (training images) and keeps float32
input and output tensors, so every format takes the same preprocessed input and answers probabilities.
Outputs are read by name through the model's serving signature (see :func:`signature_outputs`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.tf import tf

VARIANTS = ("fp32", "dynamic", "int8", "qat")  # qat: a tfmot model, int8 ranges from its fake-quant nodes


def keras_to_tflite(model, path: Path, variant: str = "fp32", representative: np.ndarray | None = None) -> Path:
    """Convert ``model`` and write ``path``; ``representative`` (N, H, W, 3) float32 is needed for int8."""
    return _convert(tf.lite.TFLiteConverter.from_keras_model(model), path, variant, representative)


def saved_model_to_tflite(saved: Path, path: Path, variant: str = "fp32",
                          representative: np.ndarray | None = None) -> Path:
    """The same from a SavedModel folder (:func:`export.saved_model.write`), in half the time (the Keras route
    traces the model again for each conversion): same size, signature and outputs (one byte differs)."""
    return _convert(tf.lite.TFLiteConverter.from_saved_model(str(saved)), path, variant, representative)


def _convert(converter, path: Path, variant: str, representative: np.ndarray | None) -> Path:
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if variant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":
        if representative is None or not len(representative):
            raise ValueError("full-integer int8 needs a representative batch of training images")
        converter.representative_dataset = lambda: ([image[None].astype(np.float32)] for image in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())
    return path
