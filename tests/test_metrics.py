"""Fold metrics against hand-computed values, and their summary over folds."""

import numpy as np
import pytest
from scipy import stats

from ser_lib.analysis.metrics import aggregate, aggregate_folds, classification_metrics, js_to_soft

CLASSES = ("a", "b", "c", "d")


def test_hand_computed_example_with_an_absent_class():
    # d has no test sample but is predicted once.
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "d", "c"]
    m = classification_metrics(y_true, y_pred, CLASSES)
    assert m["wa"] == pytest.approx(100 * 4 / 6)
    # UA over the present classes a, b, c: recalls 2/3, 1/2, 1.
    assert m["ua"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 1) / 3)
    assert m["macro_recall"] == m["ua"]
    # Precisions a 2/2, b 1/2, c 1/1; F1 a 0.8, b 0.5, c 1.
    assert m["macro_precision"] == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    assert m["macro_f1"] == pytest.approx(100 * (0.8 + 0.5 + 1) / 3)
    # Weighted by support 3, 2, 1: weighted recall is accuracy, the others differ from macro.
    assert m["weighted_recall"] == pytest.approx(m["wa"])
    assert m["weighted_precision"] == pytest.approx(100 * (3 * 1 + 2 * 0.5 + 1) / 6)
    assert m["weighted_f1"] == pytest.approx(100 * (3 * 0.8 + 2 * 0.5 + 1) / 6)
    assert m["per_class"]["d"] == {"recall": None, "precision": 0.0, "f1": None, "support": 0}
    assert m["per_class"]["a"] == pytest.approx({"recall": 100 * 2 / 3, "precision": 100.0, "f1": 80.0, "support": 3})
    assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m["classes_present"] == ["a", "b", "c"] and m["support"] == 6
    # Indices give the same result as names.
    as_indices = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 3, 2], CLASSES)
    assert as_indices == m


def test_never_predicted_and_unused_classes():
    m = classification_metrics(["a", "b"], ["a", "a"], CLASSES)
    assert m["per_class"]["b"]["precision"] == 0.0  # present, never predicted
    assert m["per_class"]["c"]["precision"] is None  # absent and never predicted: undefined
    assert m["ua"] == pytest.approx(50.0)
    assert m["macro_precision"] == pytest.approx(25.0)  # a: 1/2, b: 0
    assert all(not isinstance(v, np.generic) for v in m.values())


def test_bad_labels_are_named():
    with pytest.raises(ValueError, match=r"unknown class name\(s\) \['e'\]"):
        classification_metrics(["a"], ["e"], CLASSES)
    with pytest.raises(ValueError, match=r"class indices \[4\]"):
        classification_metrics([4], [0], CLASSES)
    with pytest.raises(ValueError, match="equally many"):
        classification_metrics(["a"], ["a", "b"], CLASSES)


def test_js_to_soft():
    soft = np.array([[0.5, 0.5, 0, 0], [0, 0, 1, 0]])
    assert js_to_soft(soft, soft) == pytest.approx(0.0)
    disjoint = np.array([[0, 0, 0.5, 0.5], [1, 0, 0, 0]])
    assert js_to_soft(disjoint, soft) == pytest.approx(1.0)
    assert js_to_soft(np.zeros((0, 4)), np.zeros((0, 4))) is None
    with pytest.raises(ValueError, match="row 1 sums to 0.5"):
        js_to_soft(np.array([[1, 0, 0, 0], [0.5, 0, 0, 0]]), soft)


def test_aggregate_matches_scipy_student_t():
    values = [70.0, 72.5, 65.0, 68.25, 71.0]
    result = aggregate(values)
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert result["mean"] == pytest.approx(np.mean(values))
    assert result["std"] == pytest.approx(np.std(values, ddof=1))
    assert result["ci95"] == pytest.approx(expected)
    assert result["n"] == 5
    assert aggregate([42.0]) == {"mean": 42.0, "std": 0.0, "ci95": (42.0, 42.0), "n": 1}
    assert aggregate([3.0, 3.0])["ci95"] == (3.0, 3.0)
    with pytest.raises(ValueError):
        aggregate([])
    with pytest.raises(ValueError):
        aggregate([1.0, float("nan")])


def test_aggregate_folds():
    first = classification_metrics(["a", "b"], ["a", "b"], CLASSES) | {"speaker": "s1", "js_ambiguous_test": 0.2}
    second = classification_metrics(["a", "b"], ["b", "b"], CLASSES) | {"speaker": "s2", "js_ambiguous_test": None}
    summary = aggregate_folds([first, second])
    assert summary["n_folds"] == 2
    assert summary["wa"]["mean"] == pytest.approx(75.0) and summary["wa"]["n"] == 2
    assert summary["ua"]["std"] == pytest.approx(np.std([100.0, 50.0], ddof=1))
    assert summary["js_ambiguous_test"] == {"mean": 0.2, "std": 0.0, "ci95": (0.2, 0.2), "n": 1}
    assert "js_pred_to_true" not in summary
    assert summary["confusion"][:2] == [[1, 1, 0, 0], [0, 2, 0, 0]]
    with pytest.raises(ValueError, match=r"fold result 0 \(s3\) lacks \['ua'\]"):
        aggregate_folds([{"speaker": "s3", "wa": 50.0}])
