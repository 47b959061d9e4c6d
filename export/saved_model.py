"""The TensorFlow SavedModel of a tf_keras model: what the TFLite and TF.js converters read.

Writing it traces the model once (~8 s for EfficientNet-Lite0); converting from it skips that trace, so an
export writes it once for all its TFLite and TF.js formats (`riim export`: ~45 s less for the default model).
"""
from __future__ import annotations

from pathlib import Path


def write(model, directory: Path) -> Path:
    """Save ``model`` (no optimizer) as a SavedModel folder ``directory``; returns it."""
    model.save(directory, include_optimizer=False, save_format="tf")
    return directory
