"""The CNN lab: a small convolutional network trained from scratch with tf_keras, watched epoch by epoch.

Architecture (``models.lab_config.CnnConfig``): ``depth`` blocks of Conv 3×3 (``width`` × 2^i filters,
no bias) → BatchNorm → ReLU → MaxPool 2×2 → Dropout, then Flatten → Dense(``dense``, ReLU) → Dropout →
Dense(softmax) named ``probabilities``. The input is named ``image`` and takes what the transform pipeline
(:mod:`models.transforms`) gives: channels → resize → normalise, with the statistics fitted on the training
part only. Augmentation (albumentations, scaled by ``augment.strength``) runs on the uint8 images before
normalisation, on the fly, a fresh draw every epoch.

Every epoch one callback (:class:`Watch`) writes the progress file, logs the metrics to the tracked run,
checks the alert rules (:mod:`training.alerts`) and asks the sweep whether to prune. A NaN/inf loss is
caught after the batch that produced it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import albumentations as A
import numpy as np

from models import metrics
from models import transforms as T
from models.lab_config import LabAugmentConfig, LabConfig
from training import alerts as alert_rules
from training.lab_data import LabData
from training.progress import Progress
from training.tf import keras

RECIPE = "lab-cnn/1"


class TrainingFailed(RuntimeError):
    """The run broke down (NaN/inf loss with ``stop_on_nan``); the alert has been sent."""


def build_cnn(input_shape: tuple, n_classes: int, config) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i in range(config.depth):
        x = keras.layers.Conv2D(config.width * 2 ** i, 3, padding="same", use_bias=False, name=f"block{i + 1}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i + 1}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i + 1}_relu")(x)
        x = keras.layers.MaxPooling2D(name=f"block{i + 1}_pool")(x)
        x = keras.layers.Dropout(config.dropout, name=f"block{i + 1}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(config.dense, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(config.head_dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lab_cnn")


def augmentation(config: LabAugmentConfig, seed: int = 0) -> A.Compose | None:
    """albumentations for uint8 images, every magnitude scaled by ``strength`` (None when 0)."""
    s = config.strength
    if s <= 0:
        return None
    steps = [A.HorizontalFlip(p=0.5)] if config.horizontal_flip else []
    steps += [A.Affine(translate_percent=(-0.1 * s, 0.1 * s), scale=(1 - 0.15 * s, 1 + 0.15 * s),
                       rotate=(-15 * s, 15 * s), border_mode=0, p=min(1.0, 0.3 + 0.7 * s)),
              A.CoarseDropout(num_holes_range=(1, 2), hole_height_range=(0.1, 0.25), hole_width_range=(0.1, 0.25),
                              p=0.5 * s)]
    return A.Compose(steps, seed=seed)


def augmentation_card(config: LabAugmentConfig) -> dict:
    return {"name": "augment", "training_only": True, "library": "albumentations", "strength": config.strength,
            "horizontal_flip": config.horizontal_flip}


def build_pipeline(data: LabData, size: int | None = None) -> T.Pipeline:
    """channels → resize → normalise, with normalise fitted on the training part only."""
    channels = data.x_train.shape[-1]
    size = size or data.x_train.shape[1]
    pipeline = T.Pipeline([T.Channels(channels), T.Resize(size), T.Normalize()])
    pipeline.get("normalize").fit(pipeline.until("normalize").batch(data.x_train))
    return pipeline


class Batches(keras.utils.Sequence):
    """Shuffled training batches, augmented afresh each epoch, then normalised."""

    def __init__(self, x, y, batch_size: int, augment: A.Compose, normalize: T.Normalize, seed: int):
        super().__init__()
        self.x, self.y, self.batch_size, self.augment, self.normalize = x, y, batch_size, augment, normalize
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(y))

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index):
        ids = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = np.stack([self.augment(image=image)["image"].reshape(image.shape) for image in self.x[ids]])
        return self.normalize(images), self.y[ids]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.y))


class Watch(keras.callbacks.Callback):
    """Per epoch: history, progress, tracked metrics, alert rules and the sweep's pruning question."""

    def __init__(self, epochs: int, progress: Progress, rules: alert_rules.Rules, notifier, run=None,
                 prune=None, stop_on_nan: bool = True):
        super().__init__()
        self.epochs, self.progress, self.rules, self.notifier, self.run = epochs, progress, rules, notifier, run
        self.prune, self.stop_on_nan = prune, stop_on_nan
        self.history: dict[str, list[float]] = {}
        self.pruned = self.broken = False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss) and self.stop_on_nan:
            self.broken = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.progress.step(epoch + 1, self.epochs, **{k: v for k, v in logs.items() if math.isfinite(v)})
        if self.run is not None:
            self.run.log_metrics(logs, step=epoch + 1)
        for rule, values in self.rules.check(self.history):
            self.notifier.send(rule, values, epoch + 1)
        if self.broken:
            self.model.stop_training = True
        elif self.prune is not None and self.prune(epoch + 1, logs):
            self.pruned = True
            self.model.stop_training = True


@dataclass
class LabResult:
    model: keras.Model
    pipeline: T.Pipeline
    classes: list[str]
    config: LabConfig
    history: dict
    metrics: dict  # test / validation summaries (models.metrics.summary)
    seconds: dict
    data: dict  # source and sizes
    pruned: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        return int(self.model.count_params())


def train(data: LabData, config: LabConfig, progress: Progress | None = None, notifier=None, run=None,
          prune=None) -> LabResult:
    """Train the CNN of ``config`` on ``data``; raises :class:`TrainingFailed` on a NaN/inf loss."""
    progress = progress or Progress(bars=False)
    notifier = notifier or alert_rules.Notifier(None, {})
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    pipeline = build_pipeline(data)
    normalize = pipeline.get("normalize")
    augment = augmentation(config.augment, config.seed)
    if augment is not None:
        pipeline.training_only = [augmentation_card(config.augment)]
    x_val = pipeline.batch(data.x_val)
    model = build_cnn(x_val.shape[1:], len(data.classes), config.model)
    fit = config.train
    model.compile(optimizer=keras.optimizers.Adam(fit.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    watch = Watch(fit.epochs, progress, alert_rules.Rules(config.alerts), notifier, run, prune, fit.stop_on_nan)
    callbacks = [watch]
    if fit.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=fit.patience, restore_best_weights=True))
    progress.stage("train", fit.epochs)
    seconds = {"prepare": time.perf_counter() - started}
    stamp = time.perf_counter()
    if augment is None:
        model.fit(pipeline.batch(data.x_train), data.y_train, batch_size=fit.batch_size, epochs=fit.epochs,
                  validation_data=(x_val, data.y_val), shuffle=True, verbose=0, callbacks=callbacks)
    else:
        model.fit(Batches(data.x_train, data.y_train, fit.batch_size, augment, normalize, config.seed),
                  epochs=fit.epochs, validation_data=(x_val, data.y_val), verbose=0, callbacks=callbacks)
    seconds["train"] = time.perf_counter() - stamp
    if watch.broken:
        raise TrainingFailed(f"loss became {watch.history.get('loss', ['nan'])[-1]} at epoch "
                             f"{len(watch.history.get('loss', []))} (learning rate {fit.learning_rate})")
    metrics = {}
    if not watch.pruned:
        stamp = time.perf_counter()
        metrics["validation"] = evaluate(model, x_val, data.y_val, data.classes)
        metrics["test"] = evaluate(model, pipeline.batch(data.x_test), data.y_test, data.classes)
        seconds["evaluate"] = time.perf_counter() - stamp
    seconds["total"] = time.perf_counter() - started
    return LabResult(model, pipeline, data.classes, config, watch.history, metrics,
                     {k: round(v, 1) for k, v in seconds.items()}, {"source": data.source, **data.sizes()},
                     pruned=watch.pruned)


def evaluate(model, x, y, classes) -> dict:
    """:func:`models.metrics.summary` of the model on (x, y) (no file lists: the images are arrays)."""
    predicted = model.predict(x, batch_size=512, verbose=0).argmax(axis=1)
    return metrics.summary([classes[i] for i in y], [classes[i] for i in predicted], classes)


def card(result: LabResult, description: dict) -> dict:
    """The card of a lab model (task ``small-image-classification``), without name/version/files."""
    shape = result.model.input_shape[1:]
    return {
        "schema_version": 1,
        "task": "small-image-classification",
        "description": description,
        "labels": result.classes,
        "input": {"height": int(shape[0]), "width": int(shape[1]), "channels": int(shape[2]), "dtype": "float32"},
        "transforms": result.pipeline.to_card(),
        "outputs": {"probabilities": "probabilities"},
        "architecture": {"kind": "cnn-from-scratch", **result.config.to_dict()["model"],
                         "parameters": result.parameters},
        "training": {"recipe": RECIPE, "trained": True, "config": result.config.to_dict(), "data": result.data,
                     "seconds": result.seconds, "epochs_run": len(result.history.get("loss", []))},
        "metrics": {**result.metrics, "curves": {"train": result.history}},
    }


def publish(registry, name: str, result: LabResult, description: dict, sample: np.ndarray) -> str:
    """A new version of ``name``: model.keras, curves.png and a raw test image (``sample.png``, what the
    lab page sends through the transforms); not promoted until the export adds ONNX."""
    from PIL import Image

    from training import diagnosis

    with registry.publish(name, card(result, description), promote=False) as draft:
        result.model.save(draft.dir / "model.keras")
        files = {"keras": "model.keras", "sample": "sample.png"}
        Image.fromarray(sample.squeeze(-1) if sample.shape[-1] == 1 else sample).save(draft.dir / "sample.png")
        if diagnosis.plot_curves({"train": result.history}, draft.dir / "curves.png"):
            files["curves"] = "curves.png"
        draft.card["files"] = files
    return draft.version
