"""Export the autoencoder and the GAN generator: ONNX (what serving runs) and TF.js (what the lesson runs in
the browser), each checked against Keras on the same inputs; the check goes in the card's ``parity``."""
from __future__ import annotations

import time

import numpy as np

from export.tfjs_export import keras_to_tfjs
from models.registry import Registry
from training.tf import tf

OPSET = 17


def keras_to_onnx(model, path, input_name: str) -> list[str]:
    """tf_keras model with one input named ``input_name`` → ONNX; returns the output names (Keras's)."""
    import tf2onnx

    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=input_name),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET, output_path=str(path))
    return [output.name for output in proto.graph.output]


def onnx_outputs(path, input_name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {input_name: batch.astype(np.float32)})))


def export(registry: Registry, name: str, version: str, model, input_name: str, check: np.ndarray,
           tfjs: bool = True) -> dict:
    """Add ``model.onnx`` (+ ``tfjs/``, float16 weights) to a published version, with the
    largest |Keras − ONNX| per output on ``check`` in ``parity.onnx_fp32_vs_keras``; returns that check."""
    with registry.amend(name, version) as draft:
        started = time.perf_counter()
        names = keras_to_onnx(model, draft.dir / "model.onnx", input_name)
        expected = dict(zip(model.output_names, [np.asarray(y) for y in _as_list(model.predict(check, verbose=0))]))
        got = onnx_outputs(draft.dir / "model.onnx", input_name, check)
        diffs = {out: float(np.max(np.abs(got[out] - expected[out]))) for out in names}
        parity = {"images": len(check), "max_abs_diff": diffs, "export_seconds": round(time.perf_counter() - started, 1)}
        draft.card["parity"] = {**draft.card.get("parity", {}), "onnx_fp32_vs_keras": parity}
        draft.card["files"]["onnx"] = "model.onnx"
        if tfjs:
            files = keras_to_tfjs(model, draft.dir / "tfjs", quantization="float16")
            draft.card["files"]["tfjs"] = {"path": "tfjs/model.json",
                                           "parts": [f"tfjs/{path.name}" for path in files[1:]]}
    return parity


def _as_list(outputs):
    return outputs if isinstance(outputs, list) else [outputs]
