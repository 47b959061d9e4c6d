"""`riim export`: every format loads from its exported file and agrees with Keras on real photos; the card
records sha256/size of every file (TF.js parts too) and the parity report; corruption is refused."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from export import browser, heldout, parity
from export.exporter import FORMATS, export_version, load_keras
from models import card as cards
from models import decision
from models.preprocess import preprocess_batch
from models.registry import CorruptModelError, Registry, RegistryError, sha256_file

pytestmark = pytest.mark.slow
PHOTOS = ("skimage/chelsea", "darknet/dog.jpg", "foolbox/imagenet_16_251.jpg", "skimage/coffee")
FP32 = ("onnx", "tflite", "tfjs")
INT8 = ("onnx_int8", "tflite_dynamic", "tflite_int8", "tfjs_uint8")


@pytest.fixture(scope="module")
def reference(exported_registry, photos):
    """(card, real batch, Keras outputs by name) for four real photos."""
    card = exported_registry.card("animals")
    batch = preprocess_batch([photos[name].image for name in PHOTOS], card["input"])
    model = load_keras(exported_registry.file("animals", None, "keras"))
    return card, batch, parity.keras_runner(model)(batch)


def test_card_lists_every_format_with_verified_files(exported_registry):
    card = exported_registry.card("animals")
    cards.validate(card)
    directory = exported_registry.path("animals")
    for fmt in FORMATS:
        if fmt == "tflite_qat":
            continue
        entry = card["files"][fmt]
        assert entry["path"] == FORMATS[fmt]
        items = [entry, *entry.get("parts", [])]
        assert all(sha256_file(directory / item["path"]) == item["sha256"] for item in items)
        assert entry["bytes"] == sum((directory / item["path"]).stat().st_size for item in items)
        assert exported_registry.file("animals", None, fmt) == directory / FORMATS[fmt]
    shards = {p.name for p in (directory / "tfjs").iterdir()} - {"model.json"}
    assert {part["path"].split("/")[1] for part in card["files"]["tfjs"]["parts"]} == shards
    assert card["files"]["onnx_int8"]["bytes"] <= 0.3 * card["files"]["onnx"]["bytes"]
    assert card["files"]["tflite_int8"]["bytes"] <= 0.3 * card["files"]["tflite"]["bytes"]
    assert card["files"]["tfjs_uint8"]["bytes"] <= 0.3 * card["files"]["onnx"]["bytes"]


@pytest.mark.parametrize("fmt", ["onnx", "onnx_int8", "tflite", "tflite_dynamic", "tflite_int8"])
def test_exported_file_loads_and_agrees_with_keras(exported_registry, reference, fmt):
    card, batch, want = reference
    path = exported_registry.file("animals", None, fmt)
    run = parity.onnx_runner(path, 1) if fmt.startswith("onnx") else parity.tflite_runner(path, 1)
    got = run(batch)
    name = card["outputs"]["probabilities"]
    answers = lambda rows: [decision.decide(card, row)[0] for row in rows]  # noqa: E731
    assert answers(got[name]) == answers(want[name]) == ["cat", "dog", "dog", "unknown"]
    tolerance = 1e-4 if fmt in FP32 else 0.15
    assert np.abs(got[name] - want[name]).max() < tolerance


def test_tfjs_runs_in_chromium_and_agrees_with_keras(exported_registry, reference):
    card, batch, want = reference
    name = card["outputs"]["probabilities"]
    features = card["outputs"]["feature_map"]
    for fmt, tolerance in (("tfjs", 0.02), ("tfjs_uint8", 0.3)):
        run = browser.run_tfjs(exported_registry.file("animals", None, fmt).parent, batch, [name, features], repeats=2)
        assert run.backend == "wasm"
        assert run.outputs[name].shape == want[name].shape
        maps = run.outputs[features].reshape(want[features].shape)  # the CAM basis, by its card name
        if fmt == "tfjs":  # (uint8 weights keep the answers, not the feature maps: correlation ~0.6-0.8)
            assert all(np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.999 for got, ref in zip(maps, want[features]))
        assert (run.outputs[name].argmax(1) == want[name].argmax(1)).all()
        assert np.abs(run.outputs[name] - want[name]).max() < tolerance


def test_tfjs_exports_are_graph_models_named_like_the_card(exported_registry):
    card = exported_registry.card("animals")
    for fmt in ("tfjs", "tfjs_uint8"):
        spec = json.loads(exported_registry.file("animals", None, fmt).read_text())
        assert spec["format"] == "graph-model", fmt  # frozen + fused: ~2x faster in the browser than a LayersModel
        assert set(card["outputs"].values()) <= set(spec["signature"]["outputs"]), fmt
        ops = {node["op"] for node in spec["modelTopology"]["node"]}
        assert "_FusedConv2D" in ops and "FusedBatchNormV3" not in ops, fmt  # BatchNorm folded


def test_parity_report_meets_the_acceptance_figures(exported_registry):
    report = exported_registry.card("animals")["parity"]["report"]
    assert report["images"] == {"real_photos": 20, "total": 20}
    rows = report["formats"]
    assert set(rows) == {"keras", *FORMATS} - {"tflite_qat"}
    for fmt in FP32:
        assert rows[fmt]["top1_agreement"] >= 0.995 and rows[fmt]["answer_agreement"] >= 0.995
    assert rows["onnx_int8"]["top1_agreement"] >= 0.98  # Softmax kept float (see quantize_onnx)
    for fmt in INT8:
        assert rows[fmt]["answer_agreement"] >= 0.9, fmt
    assert set(rows["onnx"]["latency_ms"]) == {"ort_1_thread", "ort_2_threads"}
    assert set(rows["tfjs"]["latency_ms"]) == {"chromium_wasm"}


def test_re_export_reuses_files_and_versions_stay_immutable(exported_registry, tmp_path):
    registry = Registry(tmp_path / "store")
    shutil.copytree(exported_registry.root, registry.root)
    before = registry.card("animals")["files"]
    with pytest.raises(RegistryError, match="immutable"):
        with registry.amend("animals") as draft:
            (draft.dir / "model.tflite").write_bytes(b"not a model")
            draft.card["files"]["tflite_again"] = "model.tflite"
    assert registry.card("animals")["files"] == before
    assert not list(registry.path("animals").glob(".amend-*"))


def test_only_the_asked_formats_are_exported_and_the_rest_can_follow(default_registry, tmp_path):
    registry = Registry(tmp_path / "store")
    shutil.copytree(default_registry.root, registry.root)
    with pytest.raises(ValueError, match="unknown format"):
        export_version(registry, "animals", formats=["onnx_int4"], log=lambda message: None)
    card = export_version(registry, "animals", repeats=3, formats=["onnx_int8"], log=lambda message: None)
    assert set(card["files"]) & set(FORMATS) == {"onnx", "onnx_int8"}
    assert set(card["parity"]["report"]["formats"]) == {"keras", "onnx", "onnx_int8"}


def test_corrupted_export_is_refused(exported_registry, tmp_path):
    registry = Registry(tmp_path / "store")
    shutil.copytree(exported_registry.root, registry.root)
    shard = registry.path("animals") / registry.card("animals")["files"]["tfjs"]["parts"][0]["path"]
    os.chmod(shard, 0o644)
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    with pytest.raises(CorruptModelError, match="group1-shard1of"):
        registry.file("animals", None, "tfjs")
    with pytest.raises(CorruptModelError):
        export_version(registry, "animals", repeats=3, log=lambda message: None)


def test_test_split_of_a_trained_model_joins_the_evaluation(trained_registry, trained_data, tmp_path):
    registry, name = trained_registry
    card = registry.card(name)
    images = heldout.evaluation_set(card, trained_data)
    assert images.counts["test_split"] == card["training"]["splits"]["test"]["images"] > 0
    assert set(images.expected[: images.counts["test_split"]]) <= set(card["labels"])
    assert images.batch.shape == (len(images.names), 96, 96, 3)
    calibration, source = heldout.calibration_set(card, trained_data)
    assert source == "training split" and len(calibration) == card["training"]["splits"]["train"]["images"]
    other = tmp_path / "other"
    shutil.copytree(trained_data, other)
    next((other / card["labels"][0]).iterdir()).unlink()
    with pytest.raises(ValueError, match="not the image folder"):
        heldout.evaluation_set(card, other)


def test_models_show_prints_the_parity_table(exported_registry):
    from click.testing import CliRunner

    from cli.main import main

    result = CliRunner().invoke(main, ["models", "show", "animals", "--models-dir", str(exported_registry.root)])
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("parity vs keras"):].splitlines()
    assert table[1].split()[:4] == ["format", "MiB", "top-1", "answer"]
    assert [line.split()[0] for line in table[2:10]] == ["keras", *[f for f in FORMATS if f != "tflite_qat"]]
