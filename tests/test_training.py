"""The training pipeline end to end on real Fashion-MNIST images: published files, CLI, resume, stage 2,
pruning, QAT, and the fit-verdict rule."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from cli.main import main
from models import card as card_schema
from models.preprocess import load_image, preprocess_batch
from training import data, diagnosis, importers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Fresh test-file Fashion-MNIST images of the trained classes (never seen in training)."""
    folder = importers.fashion_mnist(tmp_path_factory.mktemp("held") / "held", 10, ["bag", "sneaker", "trouser"],
                                     source="test")
    return data.scan(folder)


def test_published_version_follows_the_contract(trained_registry, trained_data, held_out):
    registry, name = trained_registry
    card = card_schema.validate(registry.card(name))
    assert card["labels"] == ["bag", "sneaker", "trouser"] and card["input"]["size"] == 96
    assert set(card["files"]) >= {"onnx", "keras", "head", "imagenet_labels", "curves"}
    assert card["training"]["dataset"]["fingerprint"] == data.scan(trained_data).fingerprint()
    assert {s["images"] for s in card["training"]["splits"].values()} == {42, 9}

    session = ort.InferenceSession(str(registry.file(name, None, "onnx")), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == sorted(card["outputs"].values())
    images = [load_image(held_out.root / s.path) for s in held_out.samples]
    outputs = dict(zip(names, session.run(None, {"image": preprocess_batch(images, card["input"])})))
    head = np.load(registry.file(name, None, "head"))
    logits = outputs["embedding"] @ head["kernel"] + head["bias"]
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(1, keepdims=True), outputs["probabilities"], atol=1e-4)
    assert outputs["feature_map"].shape[1:] == (3, 3, 1280)
    assert np.allclose(outputs["feature_map"].mean(axis=(1, 2)), outputs["embedding"], atol=1e-4)
    accuracy = np.mean(outputs["probabilities"].argmax(1) == held_out.labels)
    assert accuracy >= 0.9, accuracy  # 30 unseen real images of 3 distinct garments


def test_card_holds_metrics_curves_and_verdict(trained_registry):
    registry, name = trained_registry
    card = registry.card(name)
    metrics = card["metrics"]
    curves = metrics["curves"]["head"]
    assert len(curves["loss"]) == len(curves["val_accuracy"]) >= 1
    assert metrics["diagnosis"]["verdict"] in ("good_fit", "overfitting", "underfitting")
    assert metrics["test"]["confusion"]["labels"] == card["labels"]
    matrix = np.array(metrics["test"]["confusion"]["matrix"])
    cells = metrics["test"]["confusion"]["files"]
    assert matrix.sum() == metrics["test"]["images"] == 9
    for true, row in cells.items():
        for predicted, files in row.items():
            assert matrix[card["labels"].index(true), card["labels"].index(predicted)] == len(files)
    cv = metrics["crossval"]
    assert cv["folds"] == 3 and len(cv["per_fold"]) == 3 and cv["out_of_fold"]["images"] == 60
    assert cv["accuracy"]["mean"] == pytest.approx(np.mean([f["accuracy"] for f in cv["per_fold"]]), abs=1e-3)
    assert card["training"]["config"]["input_size"] == 96


def test_cli_train_writes_progress_and_resumes_from_work_dir(trained_data, tmp_path, monkeypatch):
    config = tmp_path / "tiny.yaml"
    config.write_text("input_size: 64\nhead: {epochs: 4}\naugment: {enabled: false}\n")
    args = ["train", "--data", str(trained_data), "--name", "tiny", "--config", str(config), "--models-dir",
            str(tmp_path / "models"), "--work-dir", str(tmp_path / "work"), "--progress-file",
            str(tmp_path / "progress.json"), "--log-json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "tiny:v1 published" in first.output
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["state"] == "done" and progress["version"] == "v1"
    state = json.loads((tmp_path / "work" / "state.json").read_text())
    assert state["stages"]["head"]["done"] and len(list((tmp_path / "work").glob("features-*.npz"))) == 1

    from training import finetune  # resuming must neither recompute features nor retrain the head

    monkeypatch.setattr(finetune, "_features", lambda *a, **k: pytest.fail("features recomputed"))
    monkeypatch.setattr(finetune.keras.Model, "fit", lambda *a, **k: pytest.fail("finished stage retrained"))
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    versions = tmp_path / "models" / "tiny" / "versions"
    cards = [json.loads((versions / v / "card.json").read_text()) for v in ("v1", "v2")]
    assert cards[0]["metrics"]["test"] == cards[1]["metrics"]["test"]
    assert cards[0]["metrics"]["curves"] == cards[1]["metrics"]["curves"]


def test_cli_train_exit_codes(trained_data, tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_text('{"head": {"epochs": "many"}}')
    result = runner.invoke(main, ["train", "--data", str(trained_data), "--name", "x", "--config", str(bad)])
    assert result.exit_code == 2 and "head.epochs: must be an integer" in result.output
    result = runner.invoke(main, ["train", "--data", str(trained_data / "bag"), "--name", "x", "--progress-file",
                                  str(tmp_path / "p.json"), "--models-dir", str(tmp_path / "m")])
    assert result.exit_code == 3 and "at least 2" in result.output
    assert json.loads((tmp_path / "p.json").read_text())["state"] == "failed"


def test_stage2_pruning_and_qat(trained_data, tmp_path):
    from export import parity, tflite_export
    from export.exporter import load_keras
    from models import training_config as config
    from models.registry import Registry
    from training import finetune

    settings = config.from_dict({"input_size": 64, "head": {"epochs": 5}, "augment": {"copies": 1},
                                 "finetune": {"enabled": True, "trainable_blocks": 1, "epochs": 2},
                                 "pruning": {"sparsities": [0.5], "epochs": 1}, "qat": {"enabled": True}})
    reference = finetune.build_classifier(64, 3, 0.2)  # untouched ImageNet weights
    result = finetune.train(trained_data, settings)
    model = result.model
    assert model.output_names == ["probabilities", "embedding", "feature_map"]  # tags dropped after stage 2
    changed = lambda layer: not all(np.array_equal(a, b) for a, b in zip(  # noqa: E731
        model.get_layer(layer).get_weights(), reference.model.get_layer(layer).get_weights()))
    assert changed("block15_project_conv") and changed("top_conv")
    assert not changed("block14_project_conv") and not changed("block15_project_bn") and not changed("stem_conv")
    assert result.card["training"]["stages"] == ["head", "finetune"]

    row = result.card["optimization"]["pruning"]["table"][0]
    assert row["measured_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert row["gzip_ratio"] > 1.3  # zeros compress
    qat = result.card["optimization"]["qat"]
    assert 0 <= qat["qat_test_accuracy"] <= 1 and result.qat_model is not None
    assert any("quant" in layer.name for layer in result.qat_model.layers)

    registry = Registry(tmp_path / "store")  # the published QAT model loads back and converts to int8 TFLite
    version = finetune.publish(registry, "qat", result)
    reloaded = load_keras(registry.file("qat", version, "qat_keras"), qat=True)
    batch = preprocess_batch(result.check_images, result.spec)
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0)[0], result.qat_model.predict(batch, verbose=0)[0],
                               atol=1e-6)
    tflite_export.keras_to_tflite(reloaded, tmp_path / "qat.tflite", "qat")
    probabilities = parity.tflite_runner(tmp_path / "qat.tflite", 1)(batch)["probabilities"]
    assert probabilities.shape == (len(batch), 3) and np.allclose(probabilities.sum(axis=1), 1, atol=0.02)


def test_verdict_rule_on_measured_shapes():
    good = {"loss": [0.9, 0.5, 0.3], "accuracy": [0.7, 0.85, 0.92],
            "val_loss": [0.8, 0.5, 0.35], "val_accuracy": [0.72, 0.84, 0.9]}
    assert diagnosis.verdict(good)["verdict"] == "good_fit"
    under = {**good, "accuracy": [0.4, 0.5, 0.6], "val_accuracy": [0.4, 0.5, 0.58]}
    assert diagnosis.verdict(under)["verdict"] == "underfitting"
    gap = {**good, "accuracy": [0.8, 0.95, 1.0], "val_accuracy": [0.7, 0.8, 0.85]}
    result = diagnosis.verdict(gap)
    assert result["verdict"] == "overfitting" and result["numbers"]["gap"] == pytest.approx(0.15)
    rising = {"loss": [0.9, 0.4, 0.1], "accuracy": [0.8, 0.9, 0.95],
              "val_loss": [0.5, 0.4, 0.6], "val_accuracy": [0.88, 0.9, 0.88]}
    result = diagnosis.verdict(rising)
    assert result["verdict"] == "overfitting" and "rose 50%" in result["reason"]
    assert diagnosis.verdict(rising, best_epoch=1)["numbers"]["epoch"] == 2


def test_interrupted_stage_resumes_at_its_last_epoch(tmp_path):
    from training import finetune
    from training.progress import Progress

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype("float32")
    y = (x[:, 0] > 0).astype(int)

    def run(epochs, key="k"):
        head = finetune.head_model(8, 2, 0.0)
        return finetune.fit(head, x, y, (x, y), epochs=epochs, learning_rate=1e-2, batch_size=8, patience=50,
                            class_weight=None, progress=Progress(bars=False), stage="head",
                            checkpoints=finetune.Checkpoints(tmp_path, key))

    first = run(2)
    state = json.loads((tmp_path / "state.json").read_text())
    state["stages"]["head"]["done"] = False  # what a run killed after its second epoch leaves behind
    (tmp_path / "state.json").write_text(json.dumps(state))
    resumed = run(4)
    assert len(resumed["loss"]) == 4 and resumed["loss"][:2] == first["loss"]
    saved = json.loads((tmp_path / "state.json").read_text())["stages"]["head"]
    assert saved["epoch"] == 4 and saved["done"] and saved["history"] == resumed
    assert finetune.Checkpoints(tmp_path, "changed config").state["stages"] == {}  # never resume another run


def test_stage2_label_smoothing_loss():
    from training import finetune

    labels = np.array([0, 2])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype="float32")
    targets = np.eye(3)[labels] * 0.9 + 0.1 / 3  # 1 - s on the true class, + s / classes on every class
    expected = -(targets * np.log(probabilities)).sum(axis=1)
    np.testing.assert_allclose(finetune.smoothed_crossentropy(0.1)(labels, probabilities).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(finetune.smoothed_crossentropy(0.0)(labels, probabilities).numpy(),
                               -np.log([0.7, 0.8]), rtol=1e-5)
