"""Quantization-aware training (tensorflow-model-optimization, tf_keras only): ``quantize_model`` inserts
int8 fake-quantisation into a *clone* of the trained model (tfmot wraps the layers it is given), which is
trained briefly with BatchNorm frozen; the export step converts it and compares it with post-training
quantization.
"""
from __future__ import annotations

import tensorflow_model_optimization as tfmot

from training.pixel_batches import PixelBatches, top1_accuracy
from training.tf import keras


def quantization_aware(model: keras.Model, sets: dict, spec: dict, config, class_weight, progress):
    """(QAT model with the same outputs as ``model``, card section comparing its test accuracy with float)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    qat = tfmot.quantization.keras.quantize_model(clone)
    (x_train, y_train), (x_test, y_test) = sets["train"], sets["test"]
    classes = list(range(model.get_layer("probabilities").output_shape[-1]))
    float_accuracy = top1_accuracy(model, x_test, y_test, spec, classes)
    output = qat.output_names[model.output_names.index("probabilities")]
    qat.compile(keras.optimizers.Adam(config.qat.learning_rate), loss={output: "sparse_categorical_crossentropy"},
                metrics={output: "accuracy"})
    progress.stage("qat", config.qat.epochs)
    qat.fit(PixelBatches(x_train, y_train, spec, config.seed), epochs=config.qat.epochs, verbose=0,
            class_weight=class_weight, callbacks=[keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: progress.step(epoch + 1, config.qat.epochs))])
    accuracy = top1_accuracy(qat, x_test, y_test, spec, classes)
    # tfmot renames the outputs ("quant_probabilities"); Identity layers give back the float model's names,
    # so the QAT TFLite file is read by the same names as every other format.
    qat = keras.Model(qat.input, [keras.layers.Identity(name=name)(output)
                                  for name, output in zip(model.output_names, qat.outputs)], name="classifier_qat")
    return qat, {"method": "tfmot quantize_model (int8 fake-quant), then trained", "epochs": config.qat.epochs,
                 "float_test_accuracy": float_accuracy, "qat_test_accuracy": accuracy,
                 "accuracy_drop_pp": round(100 * (float_accuracy - accuracy), 2),
                 "file": "model_qat.h5 (load inside tfmot.quantization.keras.quantize_scope())"}
