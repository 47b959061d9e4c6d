"""Image-folder loading and validation, importers of real data, the training config."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models import training_config as config
from training import data, importers


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """12 real Fashion-MNIST images of each of 3 classes."""
    return importers.fashion_mnist(tmp_path_factory.mktemp("data") / "fashion", 12, ["bag", "dress", "sandal"])


@pytest.fixture
def folder(fashion, tmp_path):
    """A private copy of ``fashion`` that a test may damage."""
    return shutil.copytree(fashion, tmp_path / "copy")


def test_fashion_mnist_import_is_real_and_disjoint(fashion, tmp_path):
    dataset = data.scan(fashion)
    assert dataset.classes == ["bag", "dress", "sandal"]
    assert dataset.counts() == {"bag": 12, "dress": 12, "sandal": 12}
    images, labels = importers.fashion_mnist_arrays("test")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    later = data.scan(importers.fashion_mnist(tmp_path / "later", 12, ["bag", "dress"], offset=12))
    assert not {s.sha256 for s in later.samples} & {s.sha256 for s in dataset.samples}


def test_importer_refuses_existing_folder_and_unknown_class(fashion, tmp_path):
    with pytest.raises(FileExistsError):
        importers.fashion_mnist(fashion, 1, ["bag"])
    with pytest.raises(ValueError, match="unknown Fashion-MNIST classes"):
        importers.fashion_mnist(tmp_path / "x", 1, ["cat"])
    assert not (tmp_path / "x").exists()


def test_cat_dog_and_ood_importers_write_real_photos(tmp_path):
    dataset = data.scan(importers.cat_dog(tmp_path / "catdog"), min_per_class=2)
    assert dataset.counts() == {"cat": 3, "dog": 5}  # every cat/dog photo available offline
    with pytest.raises(data.DatasetError, match="1 class folder"):  # OOD photos are one class
        data.scan(importers.ood(tmp_path / "ood"))


def test_corrupt_and_unsupported_files_are_skipped_and_reported(folder):
    (folder / "bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "dress" / "notes.txt").write_text("not an image")
    dataset = data.scan(folder)
    reasons = {item["path"]: item["reason"] for item in dataset.skipped}
    assert set(reasons) == {"bag/broken.png", "dress/notes.txt"}
    assert "unsupported" in reasons["dress/notes.txt"]
    assert dataset.counts() == {"bag": 12, "dress": 12, "sandal": 12}


def test_one_class_and_too_few_images_are_refused(folder):
    with pytest.raises(data.DatasetError, match="at least 2"):
        data.scan(folder / "bag")
    with pytest.raises(data.DatasetError, match=r"sandal \(12\).*at least 13"):
        data.scan(folder, min_per_class=13)
    with pytest.raises(data.DatasetError, match="not a folder"):
        data.scan(folder / "missing")


def test_duplicates_never_cross_splits(folder):
    bag = sorted((folder / "bag").iterdir())
    for copy in range(3):  # the same photo four times under different names
        shutil.copy(bag[0], folder / "bag" / f"copy{copy}.png")
    dataset = data.scan(folder)
    assert [sorted(group) for group in dataset.duplicates] == [
        sorted([bag[0].relative_to(folder).as_posix()] + [f"bag/copy{c}.png" for c in range(3)])]
    for seed in range(8):
        splits = data.split(dataset, 0.25, 0.25, seed)
        where = {name: {dataset.samples[i].sha256 for i in ids} for name, ids in splits.items()}
        assert not where["train"] & where["validation"] and not where["train"] & where["test"]
        assert not where["validation"] & where["test"]
        assert sorted(sum(splits.values(), [])) == list(range(len(dataset.samples)))


def test_split_is_stratified_and_reproducible(fashion):
    dataset = data.scan(fashion)
    splits = data.split(dataset, 0.25, 0.25, seed=1)
    assert splits == data.split(dataset, 0.25, 0.25, seed=1) != data.split(dataset, 0.25, 0.25, seed=2)
    for name in ("validation", "test"):
        assert np.bincount(dataset.labels[splits[name]]).tolist() == [3, 3, 3]


def test_identical_image_under_two_classes_is_left_out(folder):
    shutil.copy(folder / "bag" / sorted(p.name for p in (folder / "bag").iterdir())[0], folder / "dress" / "x.png")
    dataset = data.scan(folder)
    conflicts = [item["path"] for item in dataset.skipped if "several classes" in item["reason"]]
    assert len(conflicts) == 2 and "dress/x.png" in conflicts
    assert dataset.counts() == {"bag": 11, "dress": 12, "sandal": 12}


def test_fingerprint_ignores_names_but_not_pixels(folder):
    before = data.scan(folder).fingerprint()
    first = sorted((folder / "bag").iterdir())[0]
    first.rename(folder / "bag" / "renamed.png")
    assert data.scan(folder).fingerprint() == before
    from PIL import Image
    pixels = np.asarray(Image.open(folder / "bag" / "renamed.png")).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(folder / "bag" / "renamed.png")
    assert data.scan(folder).fingerprint() != before


def test_config_defaults_round_trip_through_yaml_and_json(tmp_path):
    (tmp_path / "c.yaml").write_text("input_size: 128\nfinetune: {enabled: true, trainable_blocks: 3, "
                                     "label_smoothing: 0}\npruning:\n  sparsities: [0.3, 0.5]\n")
    loaded = config.load(tmp_path / "c.yaml")
    assert (loaded.input_size, loaded.finetune.enabled, loaded.finetune.trainable_blocks) == (128, True, 3)
    assert loaded.finetune.label_smoothing == 0 and config.FinetuneConfig().label_smoothing == 0.1
    assert loaded.pruning.sparsities == [0.3, 0.5] and loaded.head == config.HeadConfig()
    (tmp_path / "c.json").write_text(json.dumps(loaded.to_dict()))
    assert config.load(tmp_path / "c.json") == loaded
    assert config.load(None) == config.TrainConfig()


def test_config_errors_name_every_bad_field(tmp_path):
    with pytest.raises(config.ConfigError) as error:
        config.from_dict({"input_size": "big", "seed": -1, "head": {"epochs": 0, "speed": 2},
                          "augment": {"enabled": "yes"}, "finetune": {"label_smoothing": 0.9},
                          "pruning": {"sparsities": [0.5, 1.5]}, "qat": []})
    assert error.value.problems == [
        "input_size: must be an integer, got 'big'",
        "seed: must be >= 0, got -1",
        "augment.enabled: must be true or false, got 'yes'",
        "head.speed: unknown setting (known: epochs, learning_rate, batch_size, dropout, patience)",
        "head.epochs: must be >= 1, got 0",
        "finetune.label_smoothing: must be <= 0.5, got 0.9",
        "pruning.sparsities[1]: must be <= 0.95, got 1.5",
        "qat: must be a mapping, got []",
    ]
    with pytest.raises(config.ConfigError, match="validation_fraction \\+ test_fraction"):
        config.from_dict({"data": {"validation_fraction": 0.5, "test_fraction": 0.4}})
    (tmp_path / "bad.yaml").write_text("input_size: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(tmp_path / "bad.yaml")
    with pytest.raises(config.ConfigError, match="cannot be read"):
        config.load(tmp_path / "missing.json")


def test_crossval_folds_keep_duplicates_together_and_cover_every_image(folder):
    from training import crossval

    bag = sorted((folder / "bag").iterdir())
    shutil.copy(bag[0], folder / "bag" / "copy.png")
    dataset = data.scan(folder)
    held = []
    for train, test in crossval.folds(dataset.labels, dataset.groups, 4, False, seed=0):
        assert not set(dataset.groups[train]) & set(dataset.groups[test])
        assert set(dataset.labels[test]) == {0, 1, 2}  # stratified: every class in every fold
        held += test.tolist()
    assert sorted(held) == list(range(len(dataset.samples)))
    loo = list(crossval.folds(dataset.labels, dataset.groups, 0, True, seed=0))
    assert len(loo) == 36 and max(len(test) for _, test in loo) == 2  # the duplicate pair is held out together
    with pytest.raises(data.DatasetError, match="13-fold"):
        list(crossval.folds(dataset.labels, dataset.groups, 13, False, seed=0))
