"""Batches of uint8 model-size pixels for ``fit``/``predict`` (pruning and QAT train on them)."""
from __future__ import annotations

import math

import numpy as np

from training import crossval, data
from training.tf import keras

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


def top1_accuracy(model, pixels, labels, spec, classes) -> float:
    """Top-1 accuracy of ``model`` (its first output if it has several) on uint8 ``pixels``."""
    outputs = model.predict(PixelBatches(pixels, labels, spec, shuffle=False), verbose=0)
    probabilities = outputs[0] if isinstance(outputs, list) else outputs
    return crossval.summarize(labels, probabilities, classes, [""] * len(labels))["accuracy"]
