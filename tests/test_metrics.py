"""models.metrics equals scikit-learn on the same data (random, absent classes, one class, empty)."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError
from sklearn import metrics as sk

from models import card as cards
from models import metrics

NAMES = ["cat", "dog", "bird", "fish", "ant", "bee"]


@st.composite
def samples(draw):
    """(labels, truth, predicted): truth and predictions each drawn from a subset of the labels."""
    labels = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=len(NAMES), unique=True))
    subset = st.lists(st.sampled_from(labels), min_size=1, unique=True)
    in_truth, in_predicted = draw(subset), draw(subset)
    pairs = draw(st.lists(st.tuples(st.sampled_from(in_truth), st.sampled_from(in_predicted)), min_size=1, max_size=60))
    return labels, [t for t, _ in pairs], [p for _, p in pairs]


@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn's note on a 1×1 matrix
@settings(max_examples=300, deadline=None)
@given(samples())
def test_equals_scikit_learn(case):
    labels, truth, predicted = case
    assert metrics.accuracy(truth, predicted) == sk.accuracy_score(truth, predicted)
    np.testing.assert_array_equal(metrics.confusion_matrix(truth, predicted, labels),
                                  sk.confusion_matrix(truth, predicted, labels=labels))
    ours = metrics.precision_recall_f1_support(truth, predicted, labels)
    theirs = sk.precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    for mine, reference in zip(ours, theirs):
        np.testing.assert_array_equal(mine, reference)
    assert metrics.macro_f1(truth, predicted, labels) == pytest.approx(
        sk.f1_score(truth, predicted, average="macro", labels=labels, zero_division=0), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(samples())
def test_summary_is_the_same_numbers_as_json(case):
    labels, truth, predicted = case
    paths = [f"{i}.jpg" for i in range(len(truth))]
    result = json.loads(json.dumps(metrics.summary(truth, predicted, labels, paths, digits=None)))
    assert result["images"] == len(truth)
    assert result["accuracy"] == metrics.accuracy(truth, predicted)
    assert result["macro_f1"] == metrics.macro_f1(truth, predicted, labels)
    assert list(result["per_class"]) == labels
    assert result["confusion"]["labels"] == labels
    matrix = np.array(result["confusion"]["matrix"])
    assert matrix.sum() == len(truth)
    precision, recall, f1, support = metrics.precision_recall_f1_support(truth, predicted, labels)
    for i, label in enumerate(labels):
        assert result["per_class"][label] == {"precision": precision[i], "recall": recall[i], "f1": f1[i],
                                              "support": support[i]}
    for true, row in result["confusion"]["files"].items():
        for guess, files in row.items():
            assert matrix[labels.index(true), labels.index(guess)] == len(files)
            assert all(truth[int(f[:-4])] == true and predicted[int(f[:-4])] == guess for f in files)
    rounded = metrics.summary(truth, predicted, labels)
    assert rounded["macro_f1"] == round(result["macro_f1"], 4)


def test_classes_absent_from_truth_and_prediction_count_in_macro_f1():
    result = metrics.summary(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b", "c"], digits=None)
    assert result["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)


def test_one_class():
    result = metrics.summary(["a", "a"], ["a", "a"], ["a"])
    assert result["accuracy"] == result["macro_f1"] == 1.0
    assert result["confusion"]["matrix"] == [[2]]
    assert metrics.macro_f1(["a"], ["a"], ["a"]) == sk.f1_score(["a"], ["a"], average="macro", labels=["a"],
                                                                zero_division=0)


def test_empty_input_is_zero_where_scikit_learn_raises():
    with pytest.raises(ValueError):
        sk.accuracy_score([], [])
    result = metrics.summary([], [], ["a", "b"], paths=[])
    assert result == {"images": 0, "accuracy": 0.0, "macro_f1": 0.0,
                      "per_class": {label: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
                                    for label in ("a", "b")},
                      "confusion": {"labels": ["a", "b"], "matrix": [[0, 0], [0, 0]], "files": {}}}
    assert metrics.summary([], [], [])["macro_f1"] == 0.0


@pytest.mark.parametrize("truth, predicted, labels", [
    (["a", "x"], ["a", "a"], ["a", "b"]),   # a value outside labels
    (["a"], ["a", "b"], ["a", "b"]),        # lengths differ
    (["a"], ["a"], ["a", "a"]),             # duplicate labels
])
def test_rejects_inconsistent_input(truth, predicted, labels):
    with pytest.raises(ValueError):
        metrics.summary(truth, predicted, labels)


def test_summary_validates_as_a_card_classification_section():
    schema = cards.schema()
    section = metrics.summary(["a", "b", "b"], ["a", "a", "b"], ["a", "b"], ["1.jpg", "2.jpg", "3.jpg"])
    validator = Draft202012Validator({**schema["$defs"]["classification"], "$defs": schema["$defs"]})
    validator.validate(section)
    section["per_class"]["a"]["f1"] = 1.5
    with pytest.raises(ValidationError):
        validator.validate(section)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 20), st.integers(1, 6), st.integers(0, 2 ** 32 - 1))
def test_parity_helpers(rows, columns, seed):
    rng = np.random.default_rng(seed)
    reference = rng.random((rows, columns)).astype(np.float32)
    other = (reference + rng.normal(0, 0.1, reference.shape)).astype(np.float32)
    same = reference.argmax(1) == other.argmax(1)
    assert metrics.top1_agreement(reference, other) == (float(same.mean()) if rows else 0.0)
    delta = np.abs(other.astype(np.float64) - reference)
    assert metrics.max_abs_difference(reference, other) == (delta.max() if rows else 0.0)
    assert metrics.mean_abs_difference(reference, other) == pytest.approx(delta.mean() if rows else 0.0)
    assert metrics.top1_agreement(reference, reference) == (1.0 if rows else 0.0)
