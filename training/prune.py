"""Magnitude pruning (tensorflow-model-optimization, tf_keras only); quantization-aware training is in
:mod:`training.qat`.

Pruning starts from a *clone* of the trained model (tfmot wraps the layers it is given, so pruning the
original would prune the published model too) and trains the whole network on the training images for a
few epochs with BatchNorm frozen. Every Conv2D and Dense kernel goes from 0 to the target sparsity along a
polynomial decay that ends at 3/4 of the training steps; the mask is updated ``PRUNING_UPDATES`` times
(tfmot's default frequency of 100 steps never fires in a short run). ``strip_pruning`` then gives a plain
model; the table reports the measured sparsity, test accuracy and gzip size of its weights next to the
unpruned model's — zeros compress, the raw file does not shrink.
"""
from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import tensorflow_model_optimization as tfmot

from training.pixel_batches import PixelBatches, top1_accuracy
from training.tf import keras

PRUNING_UPDATES = 20


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


def _prunable(layer) -> bool:
    return type(layer) in (keras.layers.Conv2D, keras.layers.Dense)


def pruning_table(classifier, sets: dict, spec: dict, config, class_weight, progress) -> dict:
    """One row per target sparsity: measured sparsity, test accuracy and drop, gzip size and ratio."""
    base = _probabilities_only(classifier.model)
    classes = list(range(base.output_shape[-1]))
    (x_train, y_train), (x_test, y_test) = sets["train"], sets["test"]
    base_accuracy = top1_accuracy(base, x_test, y_test, spec, classes)
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
        accuracy = top1_accuracy(stripped, x_test, y_test, spec, classes)
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
