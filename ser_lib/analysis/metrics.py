"""Classification metrics per fold and their summary over folds (§V-A, Tables III-V).

Conventions, used everywhere in the workbench:

- WA, UA, precision, recall and F1 are in percent (0-100); JS divergences are in bits (0-1).
- WA (weighted accuracy) is plain accuracy over the test samples.
- UA (unweighted accuracy) is the mean per-class recall over the classes *present in the
  fold's test set* (the IEMOCAP convention). A class with no test sample has no recall and is
  left out of the mean, instead of counting as 0 or 100; predictions of that class are still
  errors (they lower WA and the recall of the true class).
- Macro precision/recall/F1 average over the same present classes, so macro recall equals UA.
  A present class that is never predicted has precision 0 (sklearn's ``zero_division=0``).
  Weighted averages weight by test support, so absent classes weigh 0 anyway.
- ``per_class`` lists every class. For a class absent from the test set, recall and F1 are
  None (undefined); its precision is 0 when it was predicted (every prediction wrong), else None.
- Confusion matrices have true classes as rows, predicted classes as columns, in class order.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from ..files import jsonable
from .divergence import as_numpy, js_divergence

AVERAGES = ("macro", "weighted")
CLASSIFICATION_KEYS = ("wa", "ua", "macro_precision", "macro_recall", "macro_f1",
                       "weighted_precision", "weighted_recall", "weighted_f1")
# Label-drift and ambiguous-test metrics a fold may carry (see ser_lib.results).
JS_KEYS = ("js_observed_to_true", "js_corrected_to_true", "js_pred_to_true", "js_ambiguous_test")
SUMMARY_KEYS = CLASSIFICATION_KEYS + JS_KEYS
CONFIDENCE = 0.95


def class_indices(values, classes: Sequence[str], what: str = "labels") -> np.ndarray:
    """Class names or integer indices as an int array of indices into `classes`."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.size and np.issubdtype(array.dtype, np.integer):
        bad = sorted({int(v) for v in array if not 0 <= v < len(classes)})
        if bad:
            raise ValueError(f"{what}: class indices {bad} are outside 0..{len(classes) - 1}")
        return array.astype(np.int64)
    lookup = {name: k for k, name in enumerate(classes)}
    unknown = sorted({str(v) for v in array if v not in lookup})
    if unknown:
        raise ValueError(f"{what}: unknown class name(s) {unknown}; classes are {list(classes)}")
    return np.array([lookup[v] for v in array], dtype=np.int64)


def classification_metrics(y_true, y_pred, classes: Sequence[str]) -> dict:
    """WA, UA, macro and weighted P/R/F1, per-class scores and the confusion matrix of one fold.

    `y_true` and `y_pred` hold class names or indices into `classes`. See the module docstring
    for how classes absent from the test set are treated.
    """
    truth = class_indices(y_true, classes, "y_true")
    pred = class_indices(y_pred, classes, "y_pred")
    if truth.shape != pred.shape or truth.size == 0:
        raise ValueError(f"need equally many true and predicted labels, at least one; got {truth.size} and {pred.size}")
    labels = list(range(len(classes)))
    present = sorted(set(truth.tolist()))
    result = {"wa": 100.0 * accuracy_score(truth, pred)}
    for average in AVERAGES:
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, pred, labels=present, average=average, zero_division=0)
        result |= {f"{average}_precision": 100.0 * precision, f"{average}_recall": 100.0 * recall,
                   f"{average}_f1": 100.0 * f1}
    result["ua"] = result["macro_recall"]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=labels, average=None, zero_division=0)
    predicted = np.bincount(pred, minlength=len(classes))
    result["per_class"] = {
        name: {
            "recall": float(100.0 * recall[k]) if support[k] else None,
            "precision": float(100.0 * precision[k]) if support[k] or predicted[k] else None,
            "f1": float(100.0 * f1[k]) if support[k] else None,
            "support": int(support[k]),
        }
        for k, name in enumerate(classes)
    }
    result["confusion"] = confusion_matrix(truth, pred, labels=labels).tolist()
    result["support"] = int(truth.size)
    result["classes_present"] = [classes[k] for k in present]
    return jsonable(result)


def js_to_soft(pred_probs, soft_labels) -> float | None:
    """Mean JS divergence (bits) between predicted distributions and soft labels, row by row.

    Used on the test speaker's ambiguous samples. Returns None for zero samples (undefined,
    and skipped by `aggregate_folds`).
    """
    probs, soft = as_numpy(pred_probs), as_numpy(soft_labels)
    if probs.ndim != 2 or probs.shape != soft.shape:
        raise ValueError(f"pred_probs {probs.shape} and soft_labels {soft.shape} must both be [N, K]")
    if len(probs) == 0:
        return None
    for name, rows in (("pred_probs", probs), ("soft_labels", soft)):
        sums = rows.sum(axis=1)
        if not np.allclose(sums, 1.0, atol=1e-4):
            worst = int(np.argmax(np.abs(sums - 1.0)))
            raise ValueError(f"{name}: row {worst} sums to {sums[worst]:.6g}, not 1")
    return float(np.mean(js_divergence(probs, soft)))


def aggregate(values: Iterable[float], confidence: float = CONFIDENCE) -> dict:
    """Mean, sample std (ddof=1), Student-t confidence interval of the mean, and n.

    The interval is ``mean ± t_{n-1, (1+confidence)/2} · std / sqrt(n)``. With a single value
    the spread is unknown: std is reported as 0 and the interval collapses to (mean, mean).
    """
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"aggregate needs at least one finite value, got {array.tolist()}")
    n, mean = int(array.size), float(array.mean())
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci95": (mean, mean), "n": 1}
    std = float(array.std(ddof=1))
    if std == 0.0:  # scipy's interval is NaN for a zero scale; identical values have no spread
        return {"mean": mean, "std": 0.0, "ci95": (mean, mean), "n": n}
    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=std / np.sqrt(n))
    return {"mean": mean, "std": std, "ci95": (float(low), float(high)), "n": n}


def aggregate_folds(fold_results: list[dict], keys: Sequence[str] = SUMMARY_KEYS) -> dict:
    """Summaries over folds: ``{key: aggregate(...)}`` for every key of `keys` that some fold has
    (folds where the value is None are skipped, so ``n`` can be below the number of folds), plus
    ``confusion``, the confusion matrices summed over folds, and ``n_folds``.

    ``wa`` and ``ua`` must be in every fold.
    """
    if not fold_results:
        raise ValueError("aggregate_folds needs at least one fold result")
    for i, fold in enumerate(fold_results):
        missing = [k for k in ("wa", "ua") if fold.get(k) is None]
        if missing:
            raise ValueError(f"fold result {i} ({fold.get('speaker', 'unnamed')}) lacks {missing}")
    summary: dict = {"n_folds": len(fold_results)}
    for key in keys:
        values = [fold[key] for fold in fold_results if fold.get(key) is not None]
        if values:
            summary[key] = aggregate(values)
    confusions = [np.asarray(fold["confusion"]) for fold in fold_results if fold.get("confusion") is not None]
    if confusions:
        if len({c.shape for c in confusions}) > 1:
            raise ValueError(f"confusion matrices differ in shape across folds: {[c.shape for c in confusions]}")
        summary["confusion"] = np.sum(confusions, axis=0).astype(int).tolist()
    return summary


MIN_PAIRS_FOR_CI = 3  # also the fewest folds (or runs) a reported interval needs
PERCENT_RANGE, JS_RANGE = (0.0, 100.0), (0.0, 1.0)


def reportable_interval(stat: Mapping | None, bounds: tuple[float, float] = PERCENT_RANGE) -> list[float] | None:
    """The 95% interval of an `aggregate` result as it may be shown: None from fewer than
    `MIN_PAIRS_FOR_CI` values (two folds give intervals such as WA [-3, 148] that say nothing),
    and clipped to the quantity's range, e.g. [0, 100] for percentages and [0, 1] for JS
    divergences in bits (the t-interval is symmetric and ignores the bounds)."""
    if not stat or stat.get("n", 0) < MIN_PAIRS_FOR_CI:
        return None
    low, high = stat["ci95"]
    return [max(low, bounds[0]), min(high, bounds[1])]


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """A − B over matched pairs (the same fold and seed): the mean difference, its Student-t
    confidence interval, and the two-sided Wilcoxon signed-rank p-value (scipy; zero differences
    are dropped, as Wilcoxon's original test does).

    With fewer than `MIN_PAIRS_FOR_CI` pairs no interval is given (``ci95`` None): two pairs
    give an interval tens of points wide that says nothing. p is 1.0 when every difference is 0.
    Pairs over folds × seeds are not independent (one fold's seeds share their test speaker), so
    the interval and p-value treat them as more evidence than they are; see the report's note.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_difference needs two equal-length non-empty 1-D sequences, got {a.shape}, {b.shape}")
    diff = a - b
    n = int(diff.size)
    result = {"delta": float(diff.mean()), "std": float(diff.std(ddof=1)) if n > 1 else 0.0, "n_pairs": n,
              "ci95": None, "p_value": None, "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum())}
    if n >= MIN_PAIRS_FOR_CI:
        result["ci95"] = aggregate(diff, confidence)["ci95"]
    if not np.any(diff):
        result["p_value"] = 1.0
    elif n >= 2:
        result["p_value"] = float(stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue)
    return result
