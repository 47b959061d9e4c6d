"""Transfer learning on the lab's split, for the side-by-side comparison with the CNN trained from scratch.

The project's pretrained backbone (EfficientNet-Lite0, ImageNet weights, :mod:`training.backbone`) is
frozen; each image goes through the transform pipeline the backbone was trained with — grey → RGB,
resize to ``input_size``, the backbone's own normalisation (not fitted: the weights expect it) — and
its 1280-d embedding (global average pool) is computed once. A new head (Dropout → Dense softmax,
:func:`training.finetune.head_model`) is trained on those embeddings with the lab's :class:`Watch`
callback, so progress, tracking and alerts work as for the CNN.
"""
from __future__ import annotations

import time

import numpy as np

from models import transforms as T
from models.lab_config import LabConfig
from training import alerts as alert_rules
from training import backbone, finetune, lab_cnn
from training.lab_data import LabData
from training.progress import Progress
from training.tf import keras

BATCH = 128


def pipeline(size: int) -> T.Pipeline:
    spec = backbone.IMAGENET_INPUT
    return T.Pipeline([T.Channels(3), T.Resize(size), T.Normalize(spec["mean"], spec["std"])])


def embeddings(net, steps: T.Pipeline, images: np.ndarray, progress: Progress, label: str) -> np.ndarray:
    progress.stage(label, len(images), unit="image")
    out = []
    for start in range(0, len(images), BATCH):
        out.append(net.predict_on_batch(steps.batch(images[start:start + BATCH])))
        progress.step(min(start + BATCH, len(images)), len(images))
    return np.concatenate(out)


def train(data: LabData, config: LabConfig, input_size: int = 64, progress: Progress | None = None,
          notifier=None, run=None) -> dict:
    """Frozen backbone + new head on ``data``; returns metrics, seconds and parameters."""
    progress = progress or Progress(bars=False)
    notifier = notifier or alert_rules.Notifier(None, {})
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    net = backbone.build_efficientnet_lite0(input_size, include_top=False, trainable_blocks=0)
    pooled = keras.Model(net.input, keras.layers.GlobalAveragePooling2D()(net.output))
    steps = pipeline(input_size)
    features = {name: embeddings(pooled, steps, images, progress, f"embeddings ({name})")
                for name, images in (("train", data.x_train), ("validation", data.x_val), ("test", data.x_test))}
    seconds = {"embeddings": time.perf_counter() - started}
    head = finetune.head_model(features["train"].shape[1], len(data.classes), config.model.head_dropout)
    fit = config.train
    head.compile(optimizer=keras.optimizers.Adam(fit.learning_rate), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    watch = lab_cnn.Watch(fit.epochs, progress, alert_rules.Rules(config.alerts), notifier, run,
                          stop_on_nan=fit.stop_on_nan)
    progress.stage("head", fit.epochs)
    stamp = time.perf_counter()
    head.fit(features["train"], data.y_train, batch_size=fit.batch_size, epochs=fit.epochs,
             validation_data=(features["validation"], data.y_val), verbose=0,
             callbacks=[watch, keras.callbacks.EarlyStopping("val_loss", patience=fit.patience,
                                                             restore_best_weights=True)])
    seconds["head"] = time.perf_counter() - stamp
    test = lab_cnn.evaluate(head, features["test"], data.y_test, data.classes)
    seconds["total"] = time.perf_counter() - started
    return {"test": test, "history": watch.history, "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "parameters": int(pooled.count_params() + head.count_params()),
            "trainable_parameters": int(head.count_params()), "input_size": input_size,
            "transforms": steps.to_card()}
