"""Label drift (eq. 6): how far each ambiguous sample's label moved, and how close to the truth.

During stage 2 every ambiguous training sample's observed soft label y_s (eq. 5) is blended
with the model's prediction y_g into y_c = (1-α)·y_s + α·y_g; each fold's label store keeps
the per-epoch means of y_c and y_g. A sample's **drift** is the Jensen-Shannon divergence
(bits) between y_s and its last y_c. These pure functions turn label stores into the tables,
filters and curves that notebook 04 and the label-drift explorer show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .label_history import LabelHistory
from .runs import LABEL_HISTORY, fold_dirs

ORDERS = ("drift", "id")  # largest drift first, or by sample id
TABLE_COLUMNS = ("id", "subset", "class", "drift", "corrected_class", "true_class", "js_observed_to_true",
                 "js_corrected_to_true")


def label_drift_curve(run_dir: str | Path, kind: str = "corrected") -> list[tuple[int, float]]:
    """Mean JS divergence of the ambiguous training samples' corrected labels y_c (or, with
    kind="predicted", predictions y_g) to the truth per epoch, averaged over folds; epoch -1 is
    the observed label. Empty without true distributions."""
    tables = [LabelHistory.load(d / LABEL_HISTORY).divergence_to_truth(kind) for d in fold_dirs(run_dir)]
    tables = [t for t in tables if len(t)]
    if not tables:
        return []
    mean = pd.concat(tables).groupby("epoch")["js_to_true"].mean()
    return [(int(epoch), float(value)) for epoch, value in mean.items()]


def drift_curves(run_dirs: Mapping[str, str | Path]) -> tuple[dict, dict] | None:
    """`label_drift_curve` of each run, for y_c and for y_g (`plots.plot_drift_comparison`);
    None when no run knows the true distributions (real corpora)."""
    corrected = {name: label_drift_curve(path) for name, path in run_dirs.items()}
    if not any(corrected.values()):
        return None
    return corrected, {name: label_drift_curve(path, "predicted") for name, path in run_dirs.items()}


def sample_table(store: LabelHistory) -> pd.DataFrame:
    """One row per sample of a store: id, subset, class (argmax y_s; a tie goes to the first
    class), drift (bits), last corrected class, true class and the JS divergence of y_s and of
    the last y_c to the truth (NaN / None where unknown or unrecorded)."""
    classes = np.array(store.classes, dtype=object)
    ids = store.ids
    if not ids:
        return pd.DataFrame({name: pd.Series(dtype=float if name.startswith(("drift", "js")) else object)
                             for name in TABLE_COLUMNS})
    observed = np.array([store.observed(i) for i in ids])
    last = np.full_like(observed, np.nan)
    final = store.final("corrected")
    last[[ids.index(i) for i in final.index]] = final.to_numpy()
    truth = np.array([store.true(i) for i in ids])
    divergences = store.divergences()
    return pd.DataFrame({
        "id": ids, "subset": [store.subset(i) for i in ids], "class": classes[observed.argmax(axis=1)],
        "drift": divergences["drift"].to_numpy(),
        "corrected_class": _argmax_where(last, np.isfinite(last).all(axis=1), classes),
        "true_class": _argmax_where(truth, np.isfinite(truth).all(axis=1), classes),
        "js_observed_to_true": divergences["js_observed_to_true"].to_numpy(),
        "js_corrected_to_true": divergences["js_corrected_to_true"].to_numpy(),
    }, columns=list(TABLE_COLUMNS))


def _argmax_where(values: np.ndarray, valid: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.where(valid, classes[np.nan_to_num(values).argmax(axis=1)], None)


@dataclass(frozen=True)
class DriftFilter:
    """Which samples to list. None / the full drift range means no bound."""

    cls: str | None = None  # argmax class of y_s
    subset: str | None = None
    min_drift: float = 0.0
    max_drift: float = math.inf
    order: str = "drift"

    def check(self, classes, subsets) -> "DriftFilter":
        if self.cls is not None and self.cls not in classes:
            raise ConfigError(f"unknown class {self.cls!r}; choose one of {['any', *classes]}")
        if self.subset is not None and self.subset not in subsets:
            raise ConfigError(f"unknown subset {self.subset!r}; the label stores hold {['any', *subsets]}")
        if not 0.0 <= self.min_drift <= self.max_drift:
            raise ConfigError(f"need 0 <= min_drift <= max_drift, got {self.min_drift} and {self.max_drift}")
        if self.order not in ORDERS:
            raise ConfigError(f"order must be one of {ORDERS}, got {self.order!r}")
        return self


def filter_samples(table: pd.DataFrame, drift_filter: DriftFilter) -> list[str]:
    """The ids of `sample_table` rows that pass the filter, in its order. A sample never
    recorded (NaN drift) passes only when the drift range is unbounded."""
    f = drift_filter
    keep = np.ones(len(table), dtype=bool)
    if f.cls is not None:
        keep &= (table["class"] == f.cls).to_numpy()
    if f.subset is not None:
        keep &= (table["subset"] == f.subset).to_numpy()
    if f.min_drift > 0 or f.max_drift < math.inf:
        drift = table["drift"].to_numpy()
        keep &= (drift >= f.min_drift) & (drift <= f.max_drift)
    shown = table[keep]
    if f.order == "drift":
        shown = shown.sort_values(["drift", "id"], ascending=[False, True], na_position="last")
    return shown["id"].tolist()


def sample_labels(store: LabelHistory, sample_id: str, epoch: int | None) -> dict[str, np.ndarray]:
    """A sample's distributions at an epoch, each [K]: "observed" (y_s), "corrected" (the epoch's
    mean y_c), "predicted" (its mean y_g) and "true" when known. A label not recorded in that
    epoch is left out."""
    labels = {"observed": store.observed(sample_id)}
    if epoch is not None:
        row = store.epochs.index(epoch)
        for kind in ("corrected", "predicted"):
            values = store.history(sample_id, kind)[row]
            if np.isfinite(values).all():
                labels[kind] = values
    truth = store.true(sample_id)
    if np.isfinite(truth).all():
        labels["true"] = truth
    return labels
