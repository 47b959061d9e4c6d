"""Magnitude pruning and quantization-aware training (tensorflow-model-optimization, tf_keras only).

Both start from a *clone* of the trained model (tfmot wraps the layers it is given, so pruning the original
would prune the published model too) and train the whole network on the training images for a few epochs
with BatchNorm frozen.

- Pruning: every Conv2D and Dense kernel goes from 0 to the target sparsity along a polynomial decay that
  ends at 3/4 of the training steps; the mask is updated ``PRUNING_UPDATES`` times (tfmot's default
  frequency of 100 steps never fires in a short run). ``strip_pruning`` then gives a plain model; the
  table reports the measured sparsity, test accuracy and gzip size of its weights next to the unpruned
  model's — zeros compress, the raw file does not shrink.
- QAT: ``quantize_model`` inserts fake-quantisation (int8) and the model is trained briefly; the export
  step converts it and compares with post-training quantization.
"""
from __future__ import annotations

import gzip
import math
import tempfile
from pathlib import Path

import numpy as np
import tensorflow_model_optimization as tfmot

from training import crossval, data
from training.tf import keras

PRUNING_UPDATES = 20
BATCH_SIZE = 32


class PixelBatches(keras.utils.Sequence):
    """uint8 model-size pixels → normalised batches (as the card's ``input`` says), reshuffled every epoch."""

    def __init__(self, pixels, labels, spec, seed: int = 0, shuffle: bool = True):
        super().__init__()
        self.pixels, self.labels, self.spec, self.shuffle = pixels, labels, spec, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(pixels))
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.pixels) / BATCH_SIZE)

    def __getitem__(self, index):
        rows = self.order[index * BATCH_SIZE:(index + 1) * BATCH_SIZE]
        return data.model_input(self.pixels[rows], self.spec), self.labels[rows]

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.order)


def _probabilities_only(model: keras.Model) -> keras.Model:
    """A trainable copy of ``model`` reduced to its ``probabilities`` output (BatchNorm frozen)."""
    single = keras.Model(model.input, model.get_layer("probabilities").output)
    clone = keras.models.clone_model(single)
    clone.set_weights(single.get_weights())
    for layer in clone.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization) and layer.name != "logits"
    return clone


def gzip_size(model: keras.Model) -> int:
    """Bytes of the model's weights file (HDF5) after gzip -9."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.h5"
        model.save_weights(path)
        return len(gzip.compress(path.read_bytes(), 9))


def _accuracy(model, pixels, labels, spec, classes) -> float:
    outputs = model.predict(PixelBatches(pixels, labels, spec, shuffle=False), verbose=0)
    probabilities = outputs[0] if isinstance(outputs, list) else outputs
    return crossval.summarize(labels, probabilities, classes, [""] * len(labels))["accuracy"]


def _prunable(layer) -> bool:
    return type(layer) in (keras.layers.Conv2D, keras.layers.Dense)


def pruning_table(classifier, sets: dict, spec: dict, config, class_weight, progress) -> dict:
    """One row per target sparsity: measured sparsity, test accuracy and drop, gzip size and ratio."""
    base = _probabilities_only(classifier.model)
    classes = list(range(base.output_shape[-1]))
    (x_train, y_train), (x_test, y_test) = sets["train"], sets["test"]
    base_accuracy = _accuracy(base, x_test, y_test, spec, classes)
    base_gzip = gzip_size(base)
    settings = config.pruning
    steps = len(PixelBatches(x_train, y_train, spec)) * settings.epochs
    rows = []
    for target in settings.sparsities:
        progress.stage(f"pruning {target:.0%}", settings.epochs)
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=target, begin_step=0, end_step=max(1, int(steps * 0.75)),
            frequency=max(1, steps // PRUNING_UPDATES))
        copy = _probabilities_only(classifier.model)
        pruned = keras.models.clone_model(copy, clone_function=lambda layer: (
            tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
            if _prunable(layer) else layer))
        pruned.compile(keras.optimizers.Adam(settings.learning_rate), "sparse_categorical_crossentropy",
                       metrics=["accuracy"])
        pruned.fit(PixelBatches(x_train, y_train, spec, config.seed), epochs=settings.epochs, verbose=0,
                   class_weight=class_weight, callbacks=[
                       tfmot.sparsity.keras.UpdatePruningStep(),
                       keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: progress.step(
                           epoch + 1, settings.epochs, **(logs or {})))])
        stripped = tfmot.sparsity.keras.strip_pruning(pruned)
        kernels = [layer.get_weights()[0] for layer in stripped.layers if _prunable(layer)]
        zeros = sum(int((k == 0).sum()) for k in kernels)
        accuracy = _accuracy(stripped, x_test, y_test, spec, classes)
        size = gzip_size(stripped)
        rows.append({"target_sparsity": target,
                     "measured_sparsity": round(zeros / sum(k.size for k in kernels), 4),
                     "model_sparsity": round(zeros / stripped.count_params(), 4),
                     "test_accuracy": accuracy, "accuracy_drop_pp": round(100 * (base_accuracy - accuracy), 2),
                     "gzip_bytes": size, "gzip_ratio": round(base_gzip / size, 3)})
    return {"method": "tfmot prune_low_magnitude, PolynomialDecay, strip_pruning",
            "pruned_layers": "Conv2D + Dense kernels", "epochs": settings.epochs, "steps": steps,
            "frequency": max(1, steps // PRUNING_UPDATES), "baseline": {"test_accuracy": base_accuracy,
                                                                          "gzip_bytes": base_gzip},
            "table": rows}


def quantization_aware(model: keras.Model, sets: dict, spec: dict, config, class_weight, progress):
    """(QAT model with the same outputs as ``model``, card section comparing its test accuracy with float)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    qat = tfmot.quantization.keras.quantize_model(clone)
    (x_train, y_train), (x_test, y_test) = sets["train"], sets["test"]
    classes = list(range(model.get_layer("probabilities").output_shape[-1]))
    float_accuracy = _accuracy(model, x_test, y_test, spec, classes)
    output = qat.output_names[model.output_names.index("probabilities")]
    qat.compile(keras.optimizers.Adam(config.qat.learning_rate), loss={output: "sparse_categorical_crossentropy"},
                metrics={output: "accuracy"})
    progress.stage("qat", config.qat.epochs)
    qat.fit(PixelBatches(x_train, y_train, spec, config.seed), epochs=config.qat.epochs, verbose=0,
            class_weight=class_weight, callbacks=[keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: progress.step(epoch + 1, config.qat.epochs))])
    accuracy = _accuracy(qat, x_test, y_test, spec, classes)
    # tfmot renames the outputs ("quant_probabilities"); Identity layers give back the float model's names,
    # so the QAT TFLite file is read by the same names as every other format.
    qat = keras.Model(qat.input, [keras.layers.Identity(name=name)(output)
                                  for name, output in zip(model.output_names, qat.outputs)], name="classifier_qat")
    return qat, {"method": "tfmot quantize_model (int8 fake-quant), then trained", "epochs": config.qat.epochs,
                 "float_test_accuracy": float_accuracy, "qat_test_accuracy": accuracy,
                 "accuracy_drop_pp": round(100 * (float_accuracy - accuracy), 2),
                 "file": "model_qat.h5 (load inside tfmot.quantization.keras.quantize_scope())"}
