"""The photo/drawing → MNIST-like input steps (models/digits_preprocess.py): the refusal rules and their
messages, what a good input looks like, and the API's 4xx answers (no model needed for those)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from models import digits_preprocess as dp
from tests.digits_support import drawn

pytestmark = pytest.mark.filterwarnings("ignore")


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_a_drawn_digit_becomes_an_mnist_like_input():
    result = dp.preprocess(rgb(drawn(7)))
    assert result.reason is None and result.input.shape == (28, 28) and result.input.dtype == np.float32
    assert result.input.max() == pytest.approx(1.0) and result.input.min() == 0.0
    rows, cols = np.nonzero(result.input > 0)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= dp.BOX + 1  # longest side 20 px
    mass = result.input.sum()
    centre = [(result.input.sum(axis=axis) * (np.arange(28) + 0.5)).sum() / mass for axis in (1, 0)]
    assert centre == pytest.approx([14, 14], abs=0.5)  # centre of mass in the middle, as MNIST
    assert list(result.steps) == ["grey", "ink", "mask", "crop", "scaled", "input"]
    assert max(result.steps["grey"].shape) == dp.WORK_SIDE  # a 280 px canvas is shrunk to 160 first


def test_position_and_size_do_not_matter():
    big = dp.preprocess(rgb(drawn(3))).input
    small = dp.preprocess(rgb(drawn(3, size=(600, 400), offset=(300, 100), pen=18))).input
    assert np.abs(big - small).mean() < 0.05


def test_white_on_black_and_black_on_white_give_the_same_input():
    image = rgb(drawn(4))
    assert np.allclose(dp.preprocess(image).input, dp.preprocess(255 - image).input, atol=1e-6)


@pytest.mark.parametrize("picture, reason", [
    (np.full((280, 280, 3), 255, np.uint8), "empty"),  # an empty canvas
    (np.full((50, 80, 3), 30, np.uint8), "empty"),  # a black photo
    (np.clip(np.random.default_rng(0).normal(200, 8, (90, 120, 3)), 0, 255).astype(np.uint8), "empty"),  # plain paper
])
def test_nothing_to_read_is_refused_as_empty(picture, reason):
    assert dp.preprocess(picture).reason == reason


def test_a_speck_is_not_a_digit():
    picture = np.full((200, 200, 3), 255, np.uint8)
    picture[100:105, 90:95] = 0  # fewer pixels than the 0.5 % tails: no contrast at all
    assert dp.preprocess(picture).reason == "empty"
    picture = np.full((60, 400, 3), 255, np.uint8)
    picture[20:40, 100:110] = 0  # counts as contrast, but far too small for the picture
    assert dp.preprocess(picture).reason == "no_digit"


def test_ink_over_most_of_the_picture_is_not_a_digit():
    picture = np.full((100, 100, 3), 255, np.uint8)
    picture[:, :70] = 0  # a dark object filling most of the frame, the border mostly dark too
    picture[:10] = 255
    assert dp.preprocess(picture).reason == "no_digit"


def test_two_digits_side_by_side_are_refused():
    picture = Image.new("RGB", (560, 280), "white")
    picture.paste(drawn(1), (0, 0))
    picture.paste(drawn(4), (280, 0))
    result = dp.preprocess(rgb(picture))
    assert result.reason == "several_digits" and result.input is None


def test_pieces_of_one_digit_are_kept_and_dust_is_ignored():
    image = drawn(5)
    draw = ImageDraw.Draw(image)
    draw.line([(150, 20), (240, 20)], fill="black", width=14)  # a bar written apart from the 5, just above it
    draw.ellipse((5, 268, 9, 272), fill="black")  # dust in a corner
    result = dp.preprocess(rgb(image))
    assert result.reason is None and result.info["parts"] == 2
    assert result.info["box"][0] < 20 * dp.WORK_SIDE / 280  # the bar is inside the crop


def test_real_mnist_digits_are_accepted():
    from training.digits_data import mnist_arrays, split

    images, labels = mnist_arrays()
    test = split(labels)["test"]
    refused = [i for i in test if dp.preprocess(images[i] * 255.0).reason is not None]
    assert len(refused) <= 0.01 * len(test)  # the rules do not throw away real handwriting


def test_resize_keeps_a_constant_and_the_mean():
    flat = np.full((37, 53), 0.25)
    assert np.allclose(dp.resize(flat, 20, 9), 0.25)
    ramp = np.tile(np.linspace(0, 1, 64), (8, 1))
    assert dp.resize(ramp, 8, 16).mean() == pytest.approx(ramp.mean(), abs=0.01)


def test_otsu_splits_two_groups():
    levels = np.array([10] * 50 + [12] * 50 + [200] * 30 + [210] * 30)
    assert 12 <= dp.otsu(levels) < 200


def test_components_are_8_connected_and_sorted():
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # a diagonal: one component
    mask[4:6, 4:8] = True  # a larger one
    labels, found = dp.components(mask)
    assert [c["area"] for c in found] == [8, 3]
    assert found[1]["box"] == [0, 2, 0, 2] and labels[1, 1] == 2 and labels[5, 7] == 1


# --- the API's answers to bad input (validated before any model is loaded) --------------------------
@pytest.fixture
def serving_registry(tiny_registry):
    return tiny_registry


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


URL = "/api/v1/digits/predict"


@pytest.mark.parametrize("body, code", [
    ({"pixels": [[0.0] * 28] * 27}, "digits_shape"),
    ({"pixels": [[0.0] * 27] * 28}, "digits_shape"),
    ({"pixels": [0.0] * 784}, "digits_shape"),
    ({"pixels": "zeros"}, "digits_shape"),
    ({"pixels": [["a"] * 28] * 28}, "digits_not_numbers"),
    ({"pixels": [[True] * 28] * 28}, "digits_not_numbers"),
    ({"pixels": [[None] * 28] * 28}, "digits_not_numbers"),
    ({"pixels": [[2.0] * 28] * 28}, "digits_range"),
    ({"pixels": [[-0.1] * 28] * 28}, "digits_range"),
    ({}, "digits_missing_input"),
    ([], "digits_missing_input"),
])
def test_bad_arrays_are_400(client, body, code):
    response = client.post(URL, json=body)
    assert response.status_code == 400 and response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def test_nan_and_infinity_are_400(client):
    for token in ("NaN", "Infinity", "-Infinity"):
        body = '{"pixels": [' + ",".join(["[" + ",".join([token] + ["0"] * 27) + "]"] * 28) + "]}"
        response = client.post(URL, data=body, content_type="application/json")
        assert response.status_code == 400, (token, response.json)


def test_uploads_that_are_not_a_picture_are_400(client):
    cases = [
        ({"image": (io.BytesIO(b"not an image at all"), "x.png")}, 400, "not_an_image"),
        ({"image": (io.BytesIO(b""), "x.png")}, 400, "empty_file"),
        ({}, 400, "missing_field"),
    ]
    for data, status, code in cases:
        response = client.post(URL, data=data, content_type="multipart/form-data")
        assert (response.status_code, response.json["error"]["code"]) == (status, code)
        assert response.json["error"]["message"]


def test_pictures_without_one_digit_get_a_reason_not_a_guess(client):
    two = Image.new("RGB", (560, 280), "white")
    two.paste(drawn(1), (0, 0))
    two.paste(drawn(4), (280, 0))
    for picture, reason in ((Image.new("RGB", (280, 280), "white"), "empty"), (two, "several_digits")):
        response = client.post(f"{URL}?lang=en", data={"image": (io.BytesIO(png(picture)), "x.png")},
                               content_type="multipart/form-data")
        assert response.status_code == 200 and response.json["results"] == [] and response.json["input"] is None
        refused = response.json["preprocessing"]["refused"]
        assert refused["reason"] == reason and refused["message"].endswith(".")


def test_a_bad_model_choice_is_400(client):
    response = client.post(f"{URL}?model=rnn", json={"pixels": [[0.0] * 28] * 28})
    assert response.status_code == 400 and response.json["error"]["code"] == "bad_param"


def test_without_trained_digit_models_the_answer_is_404(client):
    response = client.post(URL, json={"pixels": [[0.0] * 28] * 28})
    assert response.status_code == 404 and "digits-" in response.json["error"]["message"]


def test_refusal_messages_exist_in_both_languages():
    catalogue = json.loads(open("web/static/i18n/messages.json", encoding="utf-8").read())
    for reason in ("empty", "no_digit", "several_digits"):
        for key in (f"digits.reason.{reason}", f"digits.refused.{reason}"):
            assert catalogue[key]["es"] and catalogue[key]["en"] and catalogue[key]["es"] != catalogue[key]["en"]


def test_riim_data_import_writes_real_digits_as_image_folders(tmp_path):
    """scikit-learn's digits (``riim data import mnist`` writes MNIST the same way, 10,000 files: not run here)."""
    from click.testing import CliRunner

    from training.cli import data_group

    result = CliRunner().invoke(data_group, ["import", "sklearn-digits", str(tmp_path / "sk")])
    assert result.exit_code == 0, result.output
    counts = {folder.name: len(list(folder.iterdir())) for folder in (tmp_path / "sk").iterdir()}
    assert sorted(counts) == [str(d) for d in range(10)] and sum(counts.values()) == 1797
    assert Image.open(next((tmp_path / "sk" / "3").iterdir())).size == (8, 8)
    again = CliRunner().invoke(data_group, ["import", "sklearn-digits", str(tmp_path / "sk")])
    assert again.exit_code == 2 and "already exists" in again.output
