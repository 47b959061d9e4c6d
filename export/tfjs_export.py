"""tf_keras model → TF.js LayersModel (``model.json`` + weight shards), float16 or uint8 weights.

tensorflowjs 4.22 is installed with ``--no-deps`` (its pins conflict with TensorFlow 2.21, DESIGN.md §7):
its package ``__init__`` imports the JAX converter and the SavedModel converter imports TensorFlow Decision
Forests, neither of which a Keras conversion uses. :func:`_converter` registers empty placeholder modules
for those two names — and only those — before importing the converter. This is the one module that does.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

QUANTIZATION = {"float16": "float16", "uint8": "uint8"}  # variant → tensorflowjs quantization dtype
SHARD_BYTES = 4 * 1024 * 1024


def _converter():
    for name in ("tensorflow_decision_forests", "tensorflowjs.converters.jax_conversion"):
        if name not in sys.modules:
            placeholder = types.ModuleType(name)
            placeholder.convert_jax = None  # the name tensorflowjs.converters re-exports
            sys.modules[name] = placeholder
    from tensorflowjs.converters import converter

    return converter


def keras_to_tfjs(model, directory: Path, quantization: str = "float16") -> list[Path]:
    """Write ``model`` as a LayersModel into ``directory``; returns ``[model.json, shard, …]``."""
    import tempfile

    if quantization not in QUANTIZATION:
        raise ValueError(f"unknown TF.js quantization {quantization!r}; choose one of {', '.join(QUANTIZATION)}")
    converter = _converter()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        h5 = Path(scratch) / "model.h5"
        model.save(h5, include_optimizer=False, save_format="h5")
        converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(
            str(h5), str(directory), quantization_dtype_map={QUANTIZATION[quantization]: True},
            weight_shard_size_bytes=SHARD_BYTES)
    return [directory / "model.json"] + sorted(directory.glob("group*.bin"))
