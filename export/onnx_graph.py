"""Read an exported ONNX graph (needs the ``onnx`` package, so export/calibration time only).

:func:`describe` turns the graph into the JSON the web view shows: blocks (the Keras layer prefix of each
node, e.g. ``block3`` or ``stem``), their op types, output shape, parameter count (BatchNorm is folded
into the convolutions by the exporter), receptive field and stride. :func:`with_feature_outputs` writes a
variant of the model that also outputs the last block of each resolution, so serving can show feature
maps and score unusual regions with ONNX Runtime alone.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import onnx
from onnx import helper, numpy_helper, shape_inference

FEATURE_PREFIX = "features/"
_BLOCK = re.compile(r"^(block\d+|stem|top)(_|$)")
_SPATIAL_OPS = {"Conv", "MaxPool", "AveragePool"}
_GLOBAL_OPS = {"GlobalAveragePool", "GlobalMaxPool", "MatMul", "Gemm", "Flatten", "ReduceMean"}


def block_name(node_name: str) -> str:
    """``animals/block3_expand_conv/Conv2D`` → ``block3``; ``animals/logits/MatMul`` → ``logits``."""
    parts = node_name.split("/")
    layer = parts[1] if len(parts) > 2 else parts[0]
    match = _BLOCK.match(layer)
    return match.group(1) if match else layer


def _attribute(node, name, default):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    inferred = shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    return {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            for v in values}


def describe(path: str | Path) -> dict:
    """Blocks, op types, shapes, parameters and receptive fields of the ONNX model at ``path``."""
    model = onnx.load(str(path))
    graph = model.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    shapes = _shapes(model)
    image = graph.input[0].name
    field = {image: (1, 1)}  # tensor → (receptive field in input pixels, stride); None = whole image
    counted: set[str] = set()
    blocks: dict[str, dict] = {}
    for node in graph.node:
        inputs = [field.get(name) for name in node.input if name and name not in initializers]
        if node.op_type in _GLOBAL_OPS or not inputs or None in inputs:
            out = None  # the whole image (or not a spatial tensor)
        else:
            rf, jump = max(inputs)
            if node.op_type in _SPATIAL_OPS:
                kernel = _attribute(node, "kernel_shape", None) or initializers[node.input[1]].shape[2:]
                stride = _attribute(node, "strides", [1])[0]
                rf, jump = rf + (int(kernel[0]) - 1) * jump, jump * int(stride)
            out = (rf, jump)
        for name in node.output:
            field[name] = out
        block = blocks.setdefault(block_name(node.name), {"ops": Counter(), "parameters": 0})
        block["ops"][node.op_type] += 1
        for name in node.input:
            weights = initializers.get(name)
            if weights is not None and name not in counted and weights.dtype.kind == "f" and weights.ndim >= 1:
                block["parameters"] += int(initializers[name].size)
                counted.add(name)
        block["output"] = node.output[0]
    described = []
    for name, block in blocks.items():
        rf = field.get(block["output"])
        described.append({
            "name": name, "ops": dict(block["ops"]), "parameters": block["parameters"],
            "output": block["output"], "output_shape": shapes.get(block["output"]),
            "receptive_field": rf[0] if rf else None, "stride": rf[1] if rf else None,
        })
    return {
        "input": {"name": image, "shape": shapes.get(image)},
        "outputs": [{"name": o.name, "shape": shapes.get(o.name)} for o in graph.output],
        "op_types": dict(Counter(node.op_type for node in graph.node)),
        "nodes": len(graph.node),
        "parameters": sum(block["parameters"] for block in described),
        "blocks": described,
        "opset": max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")),
    }


def feature_blocks(description: dict) -> list[dict]:
    """The last block at each stride (one per resolution), in order: the layers worth looking inside.

    Blocks made only of exporter layout transposes (NCHW → NHWC) are skipped."""
    chosen: dict[int, dict] = {}
    for block in description["blocks"]:
        shape = block["output_shape"]
        if block["stride"] and shape and len(shape) == 4 and set(block["ops"]) != {"Transpose"}:
            chosen[block["stride"]] = block
    return [chosen[stride] for stride in sorted(chosen)]


def with_feature_outputs(source: str | Path, target: str | Path, blocks: list[dict]) -> list[dict]:
    """Write ``source`` plus one extra NCHW output per block, named ``features/<block>``; returns them."""
    model = onnx.load(str(source))
    added = []
    for block in blocks:
        name = f"{FEATURE_PREFIX}{block['name']}"
        model.graph.node.append(helper.make_node("Identity", [block["output"]], [name], name=f"{name}/Identity"))
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                ["batch", *block["output_shape"][1:]]))
        channels, height, width = block["output_shape"][1:]
        added.append({"block": block["name"], "output": name, "channels": channels, "height": height,
                      "width": width, "stride": block["stride"], "receptive_field": block["receptive_field"]})
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return added
