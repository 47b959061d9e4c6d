"""A tiny real conv net in ONNX, made without TensorFlow, that honours the default model's card contract.

Built with the ``onnx`` helper API from numpy weights drawn from a fixed seed: NHWC ``image`` (32²) → two
3×3 stride-2 convolutions with ReLU → ``feature_map`` (8×8×16) → global average pool ``embedding`` (16)
→ Dense ``logits`` (its kernel and bias are ``head.npz``, so CAM is exact) → softmax
``imagenet_probabilities`` (1000) → the default model's fixed sums over ``label_mapping`` →
``probabilities`` (cat, dog). Feature channel 0 measures warmth (red above blue), channel 1 coolness, and
the head adds them to the cat and dog classes: warm photos lean "cat", cool ones "dog", others
"unknown". It sees no animals — tests of what a real network sees use the real default model.
:func:`forward` is an independent numpy implementation of the same network, to check what is served.
"""
from __future__ import annotations

import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.preprocess import preprocess_batch
from models.registry import Registry
from training.default_model import HEAD_FILE, LABEL_MAPPING, LABELS_FILE, NAME, UNKNOWN_THRESHOLD

SIZE = 32
SEED = 0
CHANNELS = (8, 16)
WARMTH = {"cat": 14.0, "dog": 9.0}  # head weight from the warm (cat) and cool (dog) feature to its classes
INPUT = {"size": SIZE, "color": "RGB", "crop_fraction": 0.875, "resize": "bilinear",
         "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0], "layout": "NHWC"}
OUTPUTS = ("probabilities", "imagenet_probabilities", "embedding", "feature_map")


def weights(seed: int = SEED) -> dict[str, np.ndarray]:
    """Convolutions (ONNX OIHW layout), the head (``kernel`` embedding × 1000, ``bias``) and the label sums."""
    rng = np.random.default_rng(seed)
    conv1 = rng.normal(0, 0.3, (CHANNELS[0], 3, 3, 3)).astype(np.float32)
    conv1[:2] = 0
    conv1[0, 0], conv1[0, 2] = 1 / 9, -1 / 9  # local mean of red − blue: warmth
    conv1[1, 0], conv1[1, 2] = -1 / 9, 1 / 9  # coolness
    conv2 = rng.normal(0, 0.15, (CHANNELS[1], CHANNELS[0], 3, 3)).astype(np.float32)
    conv2[:2] = 0
    conv2[0, 0, 1, 1] = conv2[1, 1, 1, 1] = 1  # channels 0 and 1 pass warmth and coolness on
    bias1 = rng.normal(0, 0.05, CHANNELS[0]).astype(np.float32)
    bias2 = rng.normal(0, 0.05, CHANNELS[1]).astype(np.float32)
    bias1[:2] = bias2[:2] = 0
    kernel = rng.normal(0, 0.05, (CHANNELS[1], 1000)).astype(np.float32)
    summing = np.zeros((1000, len(LABEL_MAPPING)), dtype=np.float32)
    for column, (label, classes) in enumerate(LABEL_MAPPING.items()):
        summing[classes, column] = 1
        kernel[column, classes] += WARMTH[label]
    return {"conv1": conv1, "bias1": bias1, "conv2": conv2, "bias2": bias2, "kernel": kernel,
            "bias": rng.normal(0, 0.05, 1000).astype(np.float32), "summing": summing}


def graph(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model (opset 13) with input ``image`` (N, 32, 32, 3) and the card's four outputs."""
    conv = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv1", "bias1"], ["conv1_out"], **conv),
        helper.make_node("Relu", ["conv1_out"], ["relu1"]),
        helper.make_node("Conv", ["relu1", "conv2", "bias2"], ["conv2_out"], **conv),
        helper.make_node("Relu", ["conv2_out"], ["relu2"]),
        helper.make_node("Transpose", ["relu2"], ["feature_map"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["feature_map"], ["embedding"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["embedding", "kernel"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["imagenet_probabilities"], axis=-1),
        helper.make_node("MatMul", ["imagenet_probabilities", "summing"], ["probabilities"]),
    ]
    side = SIZE // 4
    shapes = {"probabilities": ["batch", len(LABEL_MAPPING)], "imagenet_probabilities": ["batch", 1000],
              "embedding": ["batch", CHANNELS[1]], "feature_map": ["batch", side, side, CHANNELS[1]]}
    model = helper.make_model(
        helper.make_graph(
            nodes, "tiny",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", SIZE, SIZE, 3])],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes[name]) for name in OUTPUTS],
            [numpy_helper.from_array(array, name) for name, array in w.items()]),
        opset_imports=[helper.make_opsetid("", 13)], producer_name="tests/tiny_model.py")
    onnx.checker.check_model(model, full_check=True)
    return model


def forward(batch: np.ndarray, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same network in numpy on a preprocessed NHWC batch: the outputs by name."""
    def conv(x, kernel, bias):
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        side = x.shape[1] // 2
        out = np.broadcast_to(bias, (x.shape[0], side, side, len(bias))).astype(np.float64)
        for i in range(3):
            for j in range(3):
                out = out + padded[:, i:i + 2 * side:2, j:j + 2 * side:2, :] @ kernel[:, :, i, j].T
        return np.maximum(out, 0)

    feature_map = conv(conv(batch.astype(np.float64), w["conv1"], w["bias1"]), w["conv2"], w["bias2"])
    embedding = feature_map.mean(axis=(1, 2))
    logits = embedding @ w["kernel"] + w["bias"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    imagenet = exp / exp.sum(axis=1, keepdims=True)
    return {"probabilities": imagenet @ w["summing"], "imagenet_probabilities": imagenet,
            "embedding": embedding, "feature_map": feature_map}


def labels(images) -> list[str]:
    """The card's answer for each RGB image (its unknown policy on :func:`forward`'s probabilities)."""
    probabilities = forward(preprocess_batch(images, INPUT), weights())["probabilities"]
    names = list(LABEL_MAPPING)
    return [names[row.argmax()] if row.max() >= UNKNOWN_THRESHOLD else "unknown" for row in probabilities]


def card(w: dict[str, np.ndarray]) -> dict:
    """The card fields of the default model's contract (labels, mapping, policy, input, outputs, tags)."""
    return {
        "schema_version": 1,
        "task": "image-classification",
        "description": {"es": "Red convolucional diminuta con pesos aleatorios fijos, sólo para pruebas.",
                        "en": "A tiny convolutional net with fixed random weights, for tests only."},
        "labels": list(LABEL_MAPPING),
        "label_mapping": LABEL_MAPPING,
        "unknown_policy": {"rule": "max_probability_below", "threshold": UNKNOWN_THRESHOLD,
                           "description": {"es": f"«desconocido» si ni P(gato) ni P(perro) llega a {UNKNOWN_THRESHOLD}.",
                                           "en": f"'unknown' when neither P(cat) nor P(dog) reaches {UNKNOWN_THRESHOLD}."}},
        "backbone": {"name": "tiny-convnet", "source": f"tests/tiny_model.py (seed {SEED})", "license": "Apache-2.0",
                     "imagenet_top1": 0.0,
                     "parameters": int(sum(w[key].size for key in ("conv1", "bias1", "conv2", "bias2")))},
        "input": dict(INPUT),
        "outputs": {name: name for name in OUTPUTS},
        "tags": {"output": "imagenet_probabilities", "top_k": 5, "labels_file": LABELS_FILE.name},
        "training": {"recipe": "tests/tiny_model", "trained": False},
    }


def publish(registry: Registry, name: str = NAME) -> str:
    """Publish the tiny model (ONNX, head, ImageNet labels) as a new version of ``name`` and promote it."""
    w = weights()
    with registry.publish(name, card(w), promote=True) as draft:
        onnx.save(graph(w), str(draft.dir / "model.onnx"))
        np.savez(draft.dir / HEAD_FILE, kernel=w["kernel"], bias=w["bias"])
        shutil.copy(LABELS_FILE, draft.dir / LABELS_FILE.name)
        draft.card["files"] = {"onnx": "model.onnx", "head": HEAD_FILE, "imagenet_labels": LABELS_FILE.name}
    return draft.version
