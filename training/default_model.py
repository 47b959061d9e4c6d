"""The embedded default model "animals": cat / dog / unknown straight from the ImageNet network.

No training: ImageNet already has 5 domestic-cat classes (281–285) and 118 dog breeds (151–268). A fixed
linear layer sums their softmax probabilities into P(cat) and P(dog); when neither reaches the card's
threshold the answer is "unknown" (the photo is most likely neither a cat nor a dog). The ONNX file also
outputs the ImageNet probabilities (tags), the embedding (global average pool) and the last conv feature
map (explanations), so serving needs nothing but ONNX Runtime.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.registry import Registry
from training import real_photos

NAME = "animals"
RECIPE = "imagenet-class-sum/1"
LABEL_MAPPING = {"cat": list(range(281, 286)), "dog": list(range(151, 269))}
UNKNOWN_THRESHOLD = 0.5
LABELS_FILE = Path(__file__).resolve().parent.parent / "models" / "imagenet_labels.json"
HEAD_FILE = "head.npz"  # the Dense on the embedding whose columns give class activation maps


def build_keras_model(input_size: int = 224) -> "keras.Model":
    """Backbone with real ImageNet weights plus four named outputs (see module docstring)."""
    from training import backbone
    from training.tf import keras  # TensorFlow is imported only when a model is really built

    net = backbone.build_efficientnet_lite0(input_size=input_size, include_top=True)
    imagenet, embedding, feature_map = named_outputs(net)
    summing = keras.layers.Dense(len(LABEL_MAPPING), use_bias=False, trainable=False, name="probabilities")
    probabilities = summing(imagenet)
    matrix = np.zeros((1000, len(LABEL_MAPPING)), dtype=np.float32)
    for column, classes in enumerate(LABEL_MAPPING.values()):
        matrix[classes, column] = 1.0
    summing.set_weights([matrix])
    return keras.Model(net.input, [probabilities, imagenet, embedding, feature_map], name=NAME)


def named_outputs(net: "keras.Model"):
    """The backbone's serving outputs as named tensors: (imagenet_probabilities, embedding, feature_map)."""
    from training.tf import keras

    imagenet = keras.layers.Softmax(name="imagenet_probabilities")(net.get_layer("logits").output)
    embedding = keras.layers.Activation("linear", name="embedding")(net.get_layer("avg_pool").output)
    feature_map = keras.layers.Activation("linear", name="feature_map")(net.get_layer("top_activation").output)
    return imagenet, embedding, feature_map


def write_head(dense: "keras.layers.Dense", path: Path) -> None:
    """Save a GAP → Dense head as ``kernel`` (embedding × scores) and ``bias``: what CAM needs at serving."""
    kernel, bias = dense.get_weights()
    np.savez(path, kernel=kernel.astype(np.float32), bias=bias.astype(np.float32))


def base_card(model: "keras.Model", input_size: int) -> dict:
    """Every card field that does not depend on the written files."""
    from training import backbone

    return {
        "schema_version": 1,
        "task": "image-classification",
        "description": {
            "es": "Gato / perro / desconocido con la red EfficientNet-Lite0 preentrenada en ImageNet, sin "
                  "reentrenar: suma las probabilidades de las 5 clases de gato y las 118 razas de perro.",
            "en": "Cat / dog / unknown from the ImageNet-pretrained EfficientNet-Lite0, no retraining: sums "
                  "the probabilities of the 5 cat classes and the 118 dog breeds.",
        },
        "labels": list(LABEL_MAPPING),
        "label_mapping": LABEL_MAPPING,
        "unknown_policy": {
            "rule": "max_probability_below",
            "threshold": UNKNOWN_THRESHOLD,
            "description": {
                "es": f"«desconocido» si ni P(gato) ni P(perro) llega a {UNKNOWN_THRESHOLD}: la red ve "
                      "otra cosa (o no está segura).",
                "en": f"'unknown' when neither P(cat) nor P(dog) reaches {UNKNOWN_THRESHOLD}: the network "
                      "sees something else (or is unsure).",
            },
        },
        "backbone": {**backbone.DESCRIPTION, "parameters": int(
            model.count_params() - model.get_layer("probabilities").count_params())},
        "input": backbone.input_spec(input_size),
        "outputs": {"probabilities": "probabilities", "imagenet_probabilities": "imagenet_probabilities",
                    "embedding": "embedding", "feature_map": "feature_map"},
        "tags": {"output": "imagenet_probabilities", "top_k": 5, "labels_file": LABELS_FILE.name},
        "training": {"recipe": RECIPE, "trained": False},
    }


def check_photos() -> list:
    """Two real photos (a cat and an espresso, scikit-image) that prove a conversion is faithful."""
    return [real_photos.photo(name).image for name in ("skimage/chelsea", "skimage/coffee")]


def build(registry: Registry, input_size: int = 224) -> tuple[str, "keras.Model"]:
    """Build the default model and publish it (Keras, head, ImageNet labels), not promoted; returns
    (version, model). Serving needs its ONNX file, added by the export step before promotion."""
    steps = tqdm(total=3, desc="animals", unit="step", bar_format="{desc}: {n}/{total} {bar} {elapsed}")
    steps.set_description("loading ImageNet weights")
    model = build_keras_model(input_size)
    steps.update()
    with registry.publish(NAME, base_card(model, input_size), promote=False) as draft:
        steps.set_description("saving Keras model")
        model.save(draft.dir / "model.keras")
        (draft.dir / LABELS_FILE.name).write_text(LABELS_FILE.read_text())
        write_head(model.get_layer("logits"), draft.dir / HEAD_FILE)
        steps.update()
        steps.set_description("publishing")
        draft.card["files"] = {"keras": "model.keras", "imagenet_labels": LABELS_FILE.name, "head": HEAD_FILE}
    steps.update()
    steps.close()
    return draft.version, model


def current(registry: Registry) -> str | None:
    """The current default version if it was built by today's recipe, else None."""
    if NAME in registry.models() and registry.current(NAME):
        card = registry.card(NAME)
        if card.get("training", {}).get("recipe") == RECIPE:
            return card["version"]
    return None


def labels() -> list[str]:
    return json.loads(LABELS_FILE.read_text())
