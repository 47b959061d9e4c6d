"""The server half of the cross-language contract (models/decision.py ↔ web/static/js/contract.js).

:func:`golden_cases` computes every case with the Python module — decisions (probability threshold and
the OOD rule of a REALLY calibrated default model, on real photos), top-k ties, flat/negative maps, the
colour table, tile selection — and :func:`write_golden` writes them as JSON for
tests/test_contract_browser.py, which runs contract.js on the same inputs in Chromium.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from app import explain, network
from app.inference import LoadedModel
from models import anomaly, decision
from models.preprocess import preprocess_batch
from models.registry import Registry

pytestmark = pytest.mark.slow
# Floats: relative (absolute below 1e-30). The Mahalanobis score is a 1280×1280 float32 quadratic form that
# numpy's BLAS sums in float32 and contract.js in float64: 1.1e-5 apart on real photos. Colour bytes: ±1.
TOLERANCE = {"relative": 1e-5, "mahalanobis": 1e-4, "colour": 1}


@pytest.fixture(scope="module")
def calibrated(calibrated_registry):
    return calibrated_registry


def floats(array) -> list[float]:
    return [float(v) for v in np.asarray(array, dtype=np.float32).ravel()]


def policy_card(card: dict, threshold: float, ood: dict | None = None, labels=None) -> dict:
    """``card`` with another unknown policy (and labels): the decision cases' inputs."""
    policy = {"rule": "max_probability_below", "threshold": threshold, **({"ood": ood} if ood else {})}
    return {"labels": labels or card["labels"], "unknown_policy": policy}


def decide_cases(card: dict) -> list[dict]:
    """Probability-threshold and OOD-threshold edge cases (equal is not below / not above; ties → first)."""
    three = ["a", "b", "c"]
    inputs = [(policy_card(card, 0.6), [0.6, 0.4], None), (policy_card(card, 0.6), [0.59, 0.41], None),
              (policy_card(card, 0.5), [0.5, 0.5], None), (policy_card(card, 0.34, labels=three), [0.3, 0.4, 0.3], None),
              (policy_card(card, 0.34, labels=three), [0.33, 0.33, 0.34], None),
              (policy_card(card, 0.5, {"score": "mahalanobis", "threshold": 100.0}), [0.9, 0.1], 100.0),
              (policy_card(card, 0.5, {"score": "mahalanobis", "threshold": 100.0}), [0.9, 0.1], 100.001),
              (policy_card(card, 0.5, {"score": "energy", "threshold": -9.5}), [0.2, 0.8], -9.0),
              (policy_card(card, 0.5, {"score": "energy", "threshold": -9.5}), [0.2, 0.8], None),
              (policy_card(card, 0.95, {"score": "max_softmax", "threshold": -0.99}), [0.2, 0.8], -0.8)]
    return [{"card": c, "probabilities": floats(p), "ood_score": s,
             "expected": list(decision.decide(c, np.asarray(p, dtype=np.float32), s))} for c, p, s in inputs]


def score_tolerance(method: str) -> float:
    return TOLERANCE.get(method, TOLERANCE["relative"])


def borderline(method: str, score: float, threshold: float) -> bool:
    """A score within the float tolerance of its threshold: either side's answer is accepted there."""
    return abs(score - threshold) <= score_tolerance(method) * abs(threshold)


def photo_cases(registry: Registry, photos: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """OOD, tag and CAM cases from the calibrated model's ONNX outputs on every real photo (one at a time,
    as the API and the browser run them). ``expected_ood_only``: the decision with the probability
    threshold at 0, so the calibrated OOD rule alone decides."""
    card = registry.card("animals")
    model = LoadedModel.load(registry, "animals", registry.resolve("animals"), precision="fp32")
    keys, head, stats, rule = card["outputs"], model.arrays["head"], model.arrays["ood"], card["unknown_policy"]["ood"]
    ood_only = {**card, "unknown_policy": {**card["unknown_policy"], "threshold": 0.0}}
    ood, tags, cams = [], [], []
    for name in sorted(photos):
        outputs = model.run(preprocess_batch([photos[name].image], card["input"]))
        result = model.results(outputs)[0]
        embedding, probabilities = outputs[keys["embedding"]], outputs[keys["probabilities"]]
        scores = {method: float(anomaly.ood_scores(method, card, embedding, probabilities, head, stats)[0])
                  for method in anomaly.OOD_SCORES}
        ood.append({"photo": name, "embedding": floats(embedding), "probabilities": floats(probabilities),
                    "scores": scores, "borderline": borderline(rule["score"], scores[rule["score"]], rule["threshold"]),
                    "expected": [result["label"], result["unknown"]],
                    "expected_ood_only": list(decision.decide(ood_only, probabilities[0], scores[rule["score"]]))})
        imagenet = outputs[card["tags"]["output"]][0]
        tags.append({"photo": name, "scores": floats(imagenet), "expected": result["tags"]})
        columns, weights = explain.target_columns(card, card["labels"][decision.best_index(probabilities[0])], imagenet)
        raw = explain.class_activation_map(outputs[keys["feature_map"]][0], head["kernel"], columns, weights)
        cams.append({"photo": name, "values": floats(raw), "expected": floats(decision.normalise_map(raw))})
    return ood, tags, cams


def golden_cases(registry: Registry, photos: dict) -> dict:
    """Every golden case (inputs → expected outputs) computed by the Python side."""
    card = registry.card("animals")
    rng = np.random.default_rng(13)
    ood, tags, cams = photo_cases(registry, photos)
    top_k = [([0.1, 0.3, 0.3, 0.2, 0.3], 3), ([0.25] * 4, 4), ([0.5, 0.2], 5), ([-1.0, 0.0, -0.0, 2.0], 4),
             (rng.random(1000).tolist(), 7)]
    maps = [np.zeros((7, 7)), -rng.random((7, 7)), np.full((3, 3), 2.5), rng.normal(size=(7, 7)),
            np.array([[0.0, 3.0], [-1.0, 1.0]]), rng.normal(size=(56, 56)) * 1e-3]
    samples = [0, 1, 0.5, -0.2, 1.3, 1 / 255, np.nextafter(np.float32(1 / 255), 0), 254.5 / 255, 0.999, 1e-8,
               *rng.random(40)]
    feature_map = rng.normal(size=(7, 5, 5)).astype(np.float32)
    feature_map[4] = feature_map[1]  # equal means: the lower channel first
    feature_map[5] = -1.0  # flat and negative: chosen last, a tile of zeros
    feature_map[6] = -2.0  # the least active: left out
    tiles = [{"channel": channel, "mean": mean, "tile": floats(decision.tile(feature_map[channel]))}
             for channel, mean in decision.select_tiles(feature_map, 6)]
    return {
        "tolerance": TOLERANCE,
        "model": {"name": "animals", "version": card["version"]},
        "card": {key: card[key] for key in ("labels", "unknown_policy", "label_mapping", "tags", "files")},
        "decide": decide_cases(card),
        "ood": ood,
        "tags": tags,
        "top_k": [{"scores": floats(s), "k": k, "expected": decision.top_k(s, k)} for s, k in top_k],
        "normalise": [{"values": floats(m), "expected": floats(decision.normalise_map(m))} for m in maps] + cams,
        "colours": {"table": decision.COLOURS.ravel().tolist(),
                    "samples": [{"value": float(np.float32(v)), "expected": decision.colorize(np.float32(v)).tolist()}
                                for v in samples]},
        "tiles": {"shape": list(feature_map.shape), "values": floats(feature_map), "count": 6, "expected": tiles},
    }


def write_golden(registry: Registry, photos: dict, path) -> dict:
    cases = golden_cases(registry, photos)
    path.write_text(json.dumps(cases))
    return cases


def close(got: float, want: float, tolerance: dict = TOLERANCE) -> bool:
    return abs(got - want) <= tolerance["relative"] * max(abs(want), 1e-30)


# --- the Python side of the contract -----------------------------------------------------------------
@pytest.fixture(scope="module")
def golden(calibrated, photos, tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "contract.json"
    write_golden(calibrated, photos, path)
    return json.loads(path.read_text())


def test_golden_cases_include_unknown_by_the_calibrated_ood_rule(golden, photos):
    """The calibrated OOD rule alone says "unknown" for every real out-of-distribution photo and keeps all
    but at most two real cat and dog photos (the threshold, at 95 % TPR, is one of their scores)."""
    policy = golden["card"]["unknown_policy"]
    assert "ood" in policy
    others = [case for case in golden["ood"] if photos[case["photo"]].label == "other"]
    assert others and all(case["expected_ood_only"] == ["unknown", True] for case in others)
    assert all(case["expected"] == ["unknown", True] for case in others)
    kept = [case for case in golden["ood"] if photos[case["photo"]].label != "other" and not case["borderline"]
            and case["expected_ood_only"][0] != "unknown"]
    assert len(kept) >= sum(photos[c["photo"]].label != "other" for c in golden["ood"]) - 2, kept


def test_decision_rules():
    card = {"labels": ["cat", "dog"]}
    assert decision.decide(policy_card(card, 0.6), [0.6, 0.4]) == ("cat", False)
    assert decision.decide(policy_card(card, 0.6), [0.59, 0.41]) == ("unknown", True)
    ood = policy_card(card, 0.5, {"score": "mahalanobis", "threshold": 10.0})
    assert decision.decide(ood, [0.9, 0.1], 10.0) == ("cat", False)
    assert decision.decide(ood, [0.9, 0.1], 10.5) == ("unknown", True)
    assert decision.top_k([0.1, 0.3, 0.3, 0.2, 0.3], 3) == [1, 2, 4]
    assert not decision.normalise_map(-np.ones((3, 3))).any() and not decision.normalise_map(np.zeros(4)).any()
    assert decision.COLOURS.shape == (256, 3)
    assert decision.COLOURS[0].tolist() == [0, 0, 4] and decision.COLOURS[-1].tolist() == [252, 255, 164]


def test_server_answers_follow_the_golden_decisions(calibrated, golden, photos, tmp_path, monkeypatch):
    """/api/v1/predict gives each photo the golden case's label and tags."""
    from tests.conftest import serving_app

    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    # The golden cases come from the fp32 outputs: serve fp32 (int8 may reorder near-tied tags).
    client = serving_app({"MODELS_DIR": str(calibrated.root), "STORE_UPLOADS": False,
                          "DEFAULT_PRECISION": "fp32"}).test_client()
    for case, tags in zip(golden["ood"], golden["tags"]):
        response = client.post("/api/v1/predict?anomaly=1", content_type="multipart/form-data",
                               data={"image": [(io.BytesIO(photos[case["photo"]].png_bytes()), "photo.png")]})
        result = response.get_json()["results"][0]
        assert case["borderline"] or [result["label"], result["unknown"]] == case["expected"], case["photo"]
        assert [tag["index"] for tag in result["tags"]] == [tag["index"] for tag in tags["expected"]]
        ood = result["anomalies"]["out_of_distribution"]
        assert close(ood["score"], case["scores"][ood["method"]], {"relative": 1e-3}), case["photo"]


def test_server_tiles_are_the_contract_tiles(golden):
    """The feature-maps API draws the contract's tiles: most active first, ties by channel, negatives as 0."""
    expected = golden["tiles"]["expected"]
    feature_map = np.asarray(golden["tiles"]["values"], dtype=np.float32).reshape(golden["tiles"]["shape"])
    channels = [tile["channel"] for tile in expected]
    assert [tile["channel"] for tile in network.tiles(feature_map, golden["tiles"]["count"])] == channels
    assert channels.index(1) < channels.index(4) and channels[-1] == 5 and 6 not in channels
    assert not any(expected[-1]["tile"]) and len(expected[0]["tile"]) == 60 * 60  # 5×5 cells of 12×12 pixels
