"""Time-series window models → ONNX (input ``sequence``, what serving runs; LSTM/GRU become ONNX's own LSTM/GRU
operators) checked against Keras, and → TF.js (GraphModel, float32: these networks are a few kB)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from export.onnx_export import OPSET
from export.tfjs_export import keras_to_tfjs
from training.tf import tf


def keras_to_onnx(model, path: Path) -> list[str]:
    import tf2onnx

    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="sequence"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET, output_path=str(path))
    return [output.name for output in proto.graph.output]


def check_onnx(model, path: Path, inputs: np.ndarray) -> dict:
    """Max |Keras − ONNX Runtime| on real windows (the conversion must be faithful)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"sequence": inputs.astype(np.float32)})[0]
    return {"windows": int(len(inputs)),
            "max_abs_diff": float(np.max(np.abs(got - model.predict(inputs, verbose=0, batch_size=1024))))}


def write(model, directory: Path, formats, check_inputs: np.ndarray) -> tuple[dict, dict]:
    """Write the requested formats into ``directory``; returns (card ``files`` entries, parity section)."""
    files, parity = {}, {}
    if "onnx" in formats:
        started = time.perf_counter()
        names = keras_to_onnx(model, directory / "model.onnx")
        if names != model.output_names:
            raise RuntimeError(f"ONNX outputs {names} do not match Keras outputs {model.output_names}")
        parity["onnx_fp32_vs_keras"] = {**check_onnx(model, directory / "model.onnx", check_inputs),
                                        "export_seconds": round(time.perf_counter() - started, 1)}
        files["onnx"] = "model.onnx"
    if "tfjs" in formats:
        written = keras_to_tfjs(model, directory / "tfjs", "float16")
        files["tfjs"] = {"path": "tfjs/model.json", "parts": [p.relative_to(directory).as_posix() for p in written[1:]]}
    return files, parity
