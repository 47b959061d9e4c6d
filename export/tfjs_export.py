"""tf_keras model → TF.js GraphModel (``model.json`` + weight shards), float16 or uint8 weights.

The model is saved as a SavedModel and converted with ``tfjs_graph_model``: the graph is frozen, BatchNorm
folded into the convolutions and conv + bias + ReLU6 fused, which runs about twice as fast in the browser as
the LayersModel route (edge model call p50 40 vs 76 ms, benchmarks/bench_edge.py on 2 vCPU). The
``serving_default`` signature keeps the Keras output names (the card's ``outputs``): TF.js
``model.execute(x, ["probabilities", …])`` maps them to the graph's nodes through the ``signature`` of
``model.json``.

tensorflowjs 4.22 is installed with ``--no-deps`` (its pins conflict with TensorFlow 2.21, docs/design.md §7):
its package ``__init__`` imports the JAX converter and the SavedModel converter imports TensorFlow Decision
Forests, neither of which a tf_keras SavedModel conversion uses. :func:`_converter` registers empty
placeholder modules for those two names — and only those — before importing the converter. This is the one
module that does.
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
    """Write ``model`` as a GraphModel into ``directory``; returns ``[model.json, shard, …]``."""
    import tempfile

    from export import saved_model

    with tempfile.TemporaryDirectory() as scratch:
        return saved_model_to_tfjs(saved_model.write(model, Path(scratch) / "saved_model"), directory, quantization)


def saved_model_to_tfjs(saved: Path, directory: Path, quantization: str = "float16") -> list[Path]:
    """The same from a SavedModel folder (:func:`export.saved_model.write`)."""
    if quantization not in QUANTIZATION:
        raise ValueError(f"unknown TF.js quantization {quantization!r}; choose one of {', '.join(QUANTIZATION)}")
    _converter()
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    directory.mkdir(parents=True, exist_ok=True)
    tf_saved_model_conversion_v2.convert_tf_saved_model(
        str(saved), str(directory), signature_def="serving_default", saved_model_tags="serve",
        quantization_dtype_map={QUANTIZATION[quantization]: True}, weight_shard_size_bytes=SHARD_BYTES)
    return [directory / "model.json"] + sorted(directory.glob("group*.bin"))
