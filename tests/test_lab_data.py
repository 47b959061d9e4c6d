"""CNN lab without TensorFlow: the transform pipeline (models/transforms.py), the CIFAR-10 python-batch
loader on files written in exactly the official format, the lab config and the alert rules."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from PIL import Image

from models import lab_config
from models import transforms as T
from models.training_config import ConfigError
from training import alerts, lab_data
from training.data import DatasetError


def test_pipeline_matches_pillow_and_round_trips_through_the_card():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    pipeline = T.Pipeline([T.Channels(1), T.Resize(28), T.Normalize()])
    train = rng.integers(0, 256, (20, 40, 40, 3), dtype=np.uint8)
    pipeline.get("normalize").fit(pipeline.until("normalize").batch(train))
    grey = pipeline.until("resize")(rgb)
    assert np.array_equal(grey[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))  # same luma as Pillow
    resized = pipeline.until("normalize")(rgb)
    assert resized.shape == (28, 28, 1)
    assert np.array_equal(resized[..., 0], np.asarray(Image.fromarray(grey[..., 0]).resize((28, 28),
                                                                                           Image.Resampling.BILINEAR)))
    card = pipeline.to_card() + [{"name": "augment", "training_only": True, "strength": 0.3}]
    again = T.Pipeline.from_card(card)
    assert np.array_equal(again(rgb), pipeline(rgb)) and again.training_only == card[-1:]
    assert [name for name, _, _ in pipeline.strip(rgb)] == ["input", "channels", "resize", "normalize"]


def test_normalize_is_fitted_on_the_training_images_only():
    train = np.full((5, 4, 4, 1), 100, dtype=np.uint8)
    train[0] = 200
    step = T.Normalize().fit(train)
    assert step.mean == [120.0] and math.isclose(step.std[0], 40.0)
    assert float(step(np.full((4, 4, 1), 120, np.uint8)).max()) == 0.0
    with pytest.raises(T.TransformError):
        T.Normalize()(train[0])
    with pytest.raises(T.TransformError, match="unknown transform"):
        T.Pipeline.from_card([{"name": "sharpen"}])


def write_cifar(folder, per_batch=6):
    """Files exactly like the official "CIFAR-10 python version": pickled dicts with bytes keys, ``data``
    a uint8 (N, 3072) array (red plane, green plane, blue plane, row-major), ``labels`` a list."""
    folder.mkdir()
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, handle)
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = np.zeros((per_batch, 3072), dtype=np.uint8)
        data[:, :1024] = 10 * index  # red plane
        data[:, 1024:2048] = 100  # green plane
        data[:, 2048 + 31] = 255  # blue, first row, last column
        labels = [(index + row) % 10 for row in range(per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{row}.png".encode() for row in range(per_batch)]}, handle)


def test_cifar10_python_batches_are_read_channel_by_channel(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    data = lab_data.load(f"cifar10:{tmp_path / 'cifar-10-batches-py'}", lab_config.DataLimits(), 0.2)
    assert data.classes[3] == "cat" and data.source == "cifar-10"
    assert data.x_train.shape[1:] == (32, 32, 3) and data.x_train.dtype == np.uint8
    assert len(data.y_train) + len(data.y_val) == 30 and len(data.y_test) == 6
    test = data.x_test[0]
    assert test[0, 0].tolist() == [50, 100, 0] and test[0, 31].tolist() == [50, 100, 255]
    assert set(data.y_test.tolist()) == {5, 6, 7, 8, 9, 0}
    with pytest.raises(DatasetError, match="missing test_batch"):
        (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
        lab_data.load(f"cifar10:{tmp_path / 'cifar-10-batches-py'}", lab_config.DataLimits(), 0.2)


def test_image_folder_and_fashion_mnist_sources(tmp_path):
    for label, value in (("dark", 30), ("light", 220)):
        (tmp_path / "f" / label).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((20, 24, 3), value + i, np.uint8)).save(tmp_path / "f" / label / f"{i}.png")
    data = lab_data.load(f"folder:{tmp_path / 'f'}", lab_config.DataLimits(), 0.2, size=16)
    assert data.classes == ["dark", "light"] and data.x_train.shape[1:] == (16, 16, 3)
    fashion = lab_data.load("fashion-mnist", lab_config.DataLimits(train_images=500, test_images=100), 0.1)
    assert fashion.sizes() == {"train": 450, "validation": 50, "test": 100}
    assert fashion.x_train.shape[1:] == (28, 28, 1) and len(set(fashion.y_val.tolist())) == 10
    with pytest.raises(DatasetError, match="unknown data source"):
        lab_data.load("imagenet", lab_config.DataLimits(), 0.1)


def test_lab_config_reports_every_bad_field():
    with pytest.raises(ConfigError) as error:
        lab_config.from_dict({"model": {"depth": 9, "colour": 1}, "train": {"epochs": "many"}})
    assert len(error.value.problems) == 3 and "model.depth: must be <= 4, got 9" in error.value.problems
    config = lab_config.from_dict(lab_config.merge({"model": {"width": 8}}, {"model": {"dropout": 0.1}}))
    assert (config.model.width, config.model.dropout, config.flat()["train.epochs"]) == (8, 0.1, 15)


def test_alert_rules_on_histories():
    rules = alerts.Rules(lab_config.AlertConfig(overfit_epochs=2, plateau_epochs=2, accuracy_threshold=0.8))
    history = {"loss": [1.0, 0.8, 0.6, 0.5], "val_loss": [1.0, 0.9, 0.95, 1.0], "val_accuracy": [0.5, 0.7, 0.81, 0.8]}
    assert sorted(name for name, _ in rules.check(history)) == ["overfitting", "plateau", "threshold"]
    assert rules.check(history) == []  # each rule fires once per run
    assert alerts.divergence({"loss": [1.0, 0.5, 1.4]}, lab_config.AlertConfig(divergence_factor=3.0)) is None
    assert alerts.nan_loss({"loss": [1.0, float("inf")]}, lab_config.AlertConfig()) == {"loss": "inf"}
