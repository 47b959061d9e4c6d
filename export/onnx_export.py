"""Keras → ONNX with tf2onnx (output names kept), checked against Keras on real images, and static int8
quantization with ONNX Runtime."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from models.preprocess import preprocess
from models.registry import Registry
from training.tf import tf

OPSET = 17


def keras_to_onnx(model, path: Path, opset: int = OPSET) -> list[str]:
    """Convert a tf_keras model with one NHWC image input named ``image``; returns the output names."""
    import tf2onnx  # imported here: it is slow to import and only export needs it

    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset,
                                          output_path=str(path))
    return [output.name for output in proto.graph.output]


def check_onnx(model, onnx_path: Path, spec: dict, images) -> dict:
    """Run Keras and ONNX Runtime on real images; max |Δ| per output (the conversion must be faithful)."""
    import onnxruntime as ort

    batch = np.stack([preprocess(image, spec) for image in images])
    expected = model.predict(batch, verbose=0)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"image": batch})))
    diffs = {name: float(np.max(np.abs(got[name] - want))) for name, want in zip(model.output_names, expected)}
    return {"images": len(images), "max_abs_diff": diffs}


def add_onnx(registry: Registry, name: str, version: str, model, check_images) -> None:
    """Add ``model.onnx`` (what serving runs) to a published version, with the Keras-vs-ONNX check on
    ``check_images`` (RGB PIL images) in the card's ``parity.onnx_fp32_vs_keras``."""
    with registry.amend(name, version) as draft:
        started = time.perf_counter()
        names = keras_to_onnx(model, draft.dir / "model.onnx")
        if sorted(names) != sorted(model.output_names):
            raise RuntimeError(f"ONNX outputs {names} do not match Keras outputs {model.output_names}")
        check = check_onnx(model, draft.dir / "model.onnx", draft.card["input"], check_images)
        draft.card["parity"] = {**draft.card.get("parity", {}), "onnx_fp32_vs_keras": {
            **check, "export_seconds": round(time.perf_counter() - started, 1)}}
        draft.card["files"]["onnx"] = "model.onnx"


class CalibrationReader:
    """ONNX Runtime calibration data: one preprocessed image per call, from an (N, H, W, 3) batch."""

    def __init__(self, batch: np.ndarray, input_name: str = "image"):
        self._images = iter([{input_name: image[None].astype(np.float32)} for image in batch])

    def get_next(self):
        return next(self._images, None)


def quantize_onnx(fp32_path: Path, path: Path, calibration: np.ndarray, **options) -> Path:
    """Static int8 ONNX (QDQ, per-channel s8 weights, u8 activations) calibrated on ``calibration``;
    ``options`` (``quantize_static``'s) replace these choices, for ``benchmarks/bench_int8.py --variants``.

    ``quant_pre_process`` (shape inference + graph optimisation) runs first, as ONNX Runtime advises.
    Softmax and the nodes fed by it stay float: probabilities quantized to 1/255 steps turn small
    class scores into ties (measured: top-1 agreement 0.5 instead of 1.0 on the default model).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not len(calibration):
        raise ValueError("int8 quantization needs calibration images")
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        nodes = onnx.load(str(prepared)).graph.node
        softmax = {out for node in nodes if node.op_type == "Softmax" for out in node.output}
        float_nodes = [node.name for node in nodes if node.op_type == "Softmax" or softmax & set(node.input)]
        chosen = {"quant_format": QuantFormat.QDQ, "per_channel": True, "activation_type": QuantType.QUInt8,
                  "weight_type": QuantType.QInt8, **options}
        quantize_static(str(prepared), str(path), CalibrationReader(calibration), nodes_to_exclude=float_nodes,
                        **chosen)
    return path
