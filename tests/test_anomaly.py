"""Anomaly detection on the real default model after `riim calibrate`: card, unknown answers, API, serving
without scikit-learn/onnx, the estimators, and CutPaste localisation on real textures."""
import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

from export.calibrate import MahalanobisOOD, auroc, threshold_at_tpr
from models import card as cards

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibrated(calibrated_registry):
    return calibrated_registry


@pytest.fixture
def calibrated_client(calibrated, tmp_path, monkeypatch):
    from tests.conftest import serving_app

    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    return serving_app({"MODELS_DIR": str(calibrated.root)}).test_client()


def predict(client, photo, query="?anomaly=1&explain=1&store=0"):
    response = client.post(f"/api/v1/predict{query}", data={"image": [(io.BytesIO(photo.png_bytes()), photo.name)]},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"][0]


def test_calibration_is_stored_in_a_valid_card(calibrated):
    card = cards.validate(calibrated.card("animals"))
    ood = card["anomaly"]["ood"]
    assert set(ood["auroc"]) == {"mahalanobis", "energy", "max_softmax"}
    assert ood["auroc"][ood["score"]] == max(ood["auroc"].values())
    assert card["unknown_policy"]["ood"] == {"score": ood["score"], "threshold": ood["threshold"]}
    for key in ("ood", "patches", "network", "features", "head"):
        calibrated.file("animals", None, key)  # present and matching its sha256


def test_ood_photos_are_unknown_and_cats_and_dogs_are_not(calibrated_client, photos):
    for photo in photos.values():
        result = predict(calibrated_client, photo)
        ood = result["anomalies"]["out_of_distribution"]
        if photo.label == "other":
            assert result["label"] == "unknown" and ood["anomalous"], photo.name
        elif "cifar10" not in photo.name:  # 32×32 thumbnails are reported, not required
            assert result["label"] == photo.label, (photo.name, ood)
        regions = result["anomalies"]["unusual_regions"]
        assert regions["method"] == "padim" and regions["heatmap"].startswith("data:image/png;base64,")


def test_network_description_and_feature_maps(calibrated_client, photos):
    network = calibrated_client.get("/api/v1/models/animals/network").get_json()["network"]
    blocks = {block["name"]: block for block in network["blocks"]}
    assert blocks["stem"]["receptive_field"] == 3 and blocks["stem"]["stride"] == 2
    assert blocks["top"]["output_shape"][1:] == [1280, 7, 7] and blocks["top"]["stride"] == 32
    assert 4_500_000 < network["parameters"] < 4_700_000 and network["op_types"]["Conv"] == 49
    chelsea = photos["skimage/chelsea"]
    response = calibrated_client.post("/api/v1/models/animals/feature-maps?count=3",
                                      data={"image": [(io.BytesIO(chelsea.png_bytes()), "c.png")]},
                                      content_type="multipart/form-data")
    layers = response.get_json()["layers"]
    assert [layer["stride"] for layer in layers] == [2, 4, 8, 16, 32]
    assert all(len(layer["tiles"]) == 3 for layer in layers)


def test_serving_needs_neither_sklearn_nor_onnx(calibrated, photos):
    code = textwrap.dedent(f"""
        import io, os, sys, tempfile
        os.environ["RIIM_INSTANCE_PATH"] = tempfile.mkdtemp()
        from app import create_app, prepare
        app = create_app({{"MODELS_DIR": {str(calibrated.root)!r}}})
        prepare(app)
        client = app.test_client()
        from PIL import Image
        buffer = io.BytesIO(); Image.new("RGB", (64, 64), (200, 90, 30)).save(buffer, format="PNG")
        response = client.post("/api/v1/predict?anomaly=1&explain=1&store=0",
                               data={{"image": [(io.BytesIO(buffer.getvalue()), "x.png")]}})
        assert response.status_code == 200, response.get_json()
        assert "score" in response.get_json()["results"][0]["anomalies"]["out_of_distribution"]
        loaded = [m for m in ("sklearn", "onnx", "tensorflow") if m in sys.modules]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_mahalanobis_estimator_on_real_digits():
    """scikit-learn conventions (clone, params) and real separation: digits 0–4 in, 5–9 out."""
    digits = load_digits()
    inside = digits.target < 5
    estimator = clone(MahalanobisOOD()).fit(digits.data[inside][::2], digits.target[inside][::2])
    assert estimator.means_.shape == (5, 64) and 0 < estimator.shrinkage_ < 1
    held_in = -estimator.score_samples(digits.data[inside][1::2])
    out = -estimator.score_samples(digits.data[~inside])
    assert auroc(held_in, out) > 0.8
    assert np.mean(held_in <= threshold_at_tpr(held_in)) >= 0.95


def test_pasted_defects_are_found_on_real_textures(calibrated):
    import onnxruntime as ort

    from export import anomaly_eval

    card = calibrated.card("animals")
    session = ort.InferenceSession(str(calibrated.file("animals", None, "features")), providers=["CPUExecutionProvider"])
    result = anomaly_eval.evaluate(session, card, card["network"]["feature_layers"], textures=("brick", "gravel"),
                                   train=24, test=12, seeds=(0,))
    print(result)
    for kind in anomaly_eval.DEFECTS:
        assert result[kind]["brick"]["image_auroc"] >= 0.9 and result[kind]["brick"]["pixel_auroc"] >= 0.85, kind
    assert result["foreign"]["gravel"]["image_auroc"] >= 0.9


def test_the_threshold_sits_between_held_out_scores_never_on_one():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
                       17.0, 18.0, 19.0, 30.0])
    threshold = threshold_at_tpr(scores)  # 95 % of 20 scores: 19 at or below
    assert threshold == 24.5 and np.mean(scores <= threshold) == 0.95
    assert threshold_at_tpr(np.array([2.0, 2.0])) > 2.0  # all equal: still strictly above every score
