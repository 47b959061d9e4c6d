"""Keras → ONNX with tf2onnx, keeping the Keras output names as ONNX output names."""
from __future__ import annotations

from pathlib import Path

from training.tf import tf

OPSET = 17


def keras_to_onnx(model, path: Path, opset: int = OPSET) -> list[str]:
    """Convert a tf_keras model with one NHWC image input named ``image``; returns the output names."""
    import tf2onnx  # imported here: it is slow to import and only export needs it

    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset,
                                          output_path=str(path))
    return [output.name for output in proto.graph.output]
