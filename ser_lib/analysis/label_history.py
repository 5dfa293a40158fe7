"""The per-epoch labels of the samples whose labels training corrects (eq. 6), as a run leaves them.

For each tracked sample a history holds its observed label y_s, its true distribution where the
corpus knows it (synthetic corpora), and per epoch the mean corrected label y_c and the mean
prediction y_g of that epoch (a sample seen several times in an epoch is averaged). Training fills
one through `method.label_store.LabelStore`; notebook 04, the label-drift explorer and the fold
records read it back here: `history`, `final`, `drift`, the divergences to the truth, or the long
table of `to_dataframe`.

Persistence needs no pickle: `save` writes an .npz archive atomically, and `state_dict` holds only
tensors, lists, strings and numbers, so it can be embedded in a checkpoint read with
`torch.load(weights_only=True)`. Sums and counts are stored, not means, so a store restored
mid-epoch keeps averaging.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import SerError
from ..files import atomic_write
from .divergence import DISTANCES, as_numpy, js_divergence

FORMAT = "ser_lib.LabelStore"  # the archive's format name, kept so older runs load
VERSION = 1
KINDS = ("corrected", "predicted")
_STRING_KEYS = ("format", "classes", "ids", "subset")
_ARRAY_KEYS = (
    "observed", "true", "rec_epoch", "rec_row", "rec_count", "rec_corrected_sum", "rec_pred_count", "rec_pred_sum",
)


class EpochSums:
    """Running sums of one sample's labels within one epoch."""

    __slots__ = ("corrected_sum", "count", "pred_sum", "pred_count")

    def __init__(self, num_classes: int):
        self.corrected_sum = np.zeros(num_classes)
        self.count = 0
        self.pred_sum = np.zeros(num_classes)
        self.pred_count = 0

    def mean(self, kind: str) -> np.ndarray:
        if kind == "corrected":
            return self.corrected_sum / self.count
        if self.pred_count == 0:
            return np.full_like(self.pred_sum, np.nan)
        return self.pred_sum / self.pred_count




class LabelHistory:
    """Per-epoch corrected labels and predictions of the tracked samples, keyed by sample id."""

    def __init__(self, classes: Sequence[str]):
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be at least two distinct names, got {classes!r}")
        self.classes = tuple(str(c) for c in classes)
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._observed: list[np.ndarray] = []
        self._subset: list[str] = []  # "" = unknown
        self._true: list[np.ndarray] = []  # NaN row = unknown
        self._epochs: dict[int, dict[int, EpochSums]] = {}

    # ------------------------------------------------------------------ reading

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    @property
    def epochs(self) -> list[int]:
        return sorted(self._epochs)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._row

    def _lookup(self, sample_id: str) -> int:
        if sample_id not in self._row:
            raise KeyError(f"no sample {sample_id!r} in the label history")
        return self._row[sample_id]

    def observed(self, sample_id: str) -> np.ndarray:
        """The observed label y_s [K]."""
        return self._observed[self._lookup(sample_id)].copy()

    def true(self, sample_id: str) -> np.ndarray:
        """The known true distribution [K]; NaN when unknown."""
        return self._true[self._lookup(sample_id)].copy()

    def subset(self, sample_id: str) -> str:
        return self._subset[self._lookup(sample_id)]

    def divergence_to_truth(self, kind: str = "corrected") -> pd.DataFrame:
        """Mean JS divergence (bits) of the labels to the true distributions per epoch, over the
        samples whose truth is known; epoch -1 is the observed label y_s. Empty without truth."""
        _check_kind(kind)
        known = [i for i in self._ids if np.isfinite(self._true[self._row[i]]).all()]
        if not known:
            return pd.DataFrame(columns=["epoch", "js_to_true", "samples"])
        true = np.array([self._true[self._row[i]] for i in known])
        observed = np.array([self._observed[self._row[i]] for i in known])
        rows = [{"epoch": -1, "js_to_true": float(js_divergence(observed, true).mean()), "samples": len(known)}]
        histories = np.stack([self.history(i, kind) for i in known])  # [N, E, K]
        for e, epoch in enumerate(self.epochs):
            recorded = np.isfinite(histories[:, e]).all(axis=1)
            if recorded.any():
                divergence = js_divergence(histories[recorded, e], true[recorded]).mean()
                rows.append({"epoch": epoch, "js_to_true": float(divergence), "samples": int(recorded.sum())})
        return pd.DataFrame(rows)

    def history(self, sample_id: str, kind: str = "corrected") -> np.ndarray:
        """Epoch means [E, K] over `self.epochs` ("corrected" y_c or "predicted" y_g);
        NaN rows for epochs in which the sample was not recorded."""
        row = self._lookup(sample_id)
        _check_kind(kind)
        out = np.full((len(self._epochs), len(self.classes)), np.nan)
        for e, epoch in enumerate(self.epochs):
            acc = self._epochs[epoch].get(row)
            if acc is not None:
                out[e] = acc.mean(kind)
        return out

    def last(self, sample_id: str, kind: str = "corrected") -> np.ndarray:
        """The label of the last epoch in which the sample was recorded [K]."""
        row = self._lookup(sample_id)
        _check_kind(kind)
        for epoch in reversed(self.epochs):
            acc = self._epochs[epoch].get(row)
            if acc is not None:
                return acc.mean(kind)
        raise KeyError(f"sample {sample_id!r} is registered but was never recorded")

    def _recorded_ids(self) -> list[str]:
        seen = set().union(*(epoch.keys() for epoch in self._epochs.values())) if self._epochs else set()
        return [self._ids[row] for row in sorted(seen)]

    def final(self, kind: str = "corrected") -> pd.DataFrame:
        """Each recorded sample's label in its last recorded epoch: index id, one column per class."""
        ids = self._recorded_ids()
        values = np.array([self.last(i, kind) for i in ids]).reshape(len(ids), len(self.classes))
        return pd.DataFrame(values, index=pd.Index(ids, name="id"), columns=list(self.classes))

    def drift(self, sample_id: str, metric: str = "js") -> float:
        """Distance between y_s and the last corrected label: "js" (Jensen-Shannon, bits) or "l1"."""
        if metric not in DISTANCES:
            raise ValueError(f"metric must be one of {sorted(DISTANCES)}, got {metric!r}")
        return DISTANCES[metric](self.observed(sample_id), self.last(sample_id))

    def drifts(self, metric: str = "js") -> pd.Series:
        """`drift` of every recorded sample, indexed by id."""
        final = self.final()
        if metric not in DISTANCES:
            raise ValueError(f"metric must be one of {sorted(DISTANCES)}, got {metric!r}")
        observed = np.array([self._observed[self._row[i]] for i in final.index]).reshape(final.shape)
        values = DISTANCES[metric](observed, final.to_numpy()) if len(final) else np.zeros(0)
        return pd.Series(values, index=final.index, name=f"drift_{metric}")

    def divergences(self) -> pd.DataFrame:
        """Per sample, indexed by id, JS divergences (bits): "drift", of the observed label y_s to
        the last corrected label y_c; "js_observed_to_true" and "js_corrected_to_true", of y_s and
        of the last y_c to the true distribution. NaN where the truth is unknown or the sample was
        never recorded. The one place the fold records, notebook 04 and the explorer take them from."""
        observed = np.array(self._observed).reshape(len(self._ids), len(self.classes))
        truth = np.array(self._true).reshape(observed.shape)
        last = np.full_like(observed, np.nan)
        final = self.final("corrected")
        last[[self._row[i] for i in final.index]] = final.to_numpy()
        known = np.isfinite(truth).all(axis=1)
        recorded = np.isfinite(last).all(axis=1)
        return pd.DataFrame({
            "drift": _js_where(observed, last, recorded),
            "js_observed_to_true": _js_where(observed, truth, known),
            "js_corrected_to_true": _js_where(last, truth, known & recorded),
        }, index=pd.Index(self._ids, name="id"))

    def to_dataframe(self) -> pd.DataFrame:
        """Long table: id, subset, epoch, kind, class, value.

        kind is "observed" (y_s) or "true" (known true distribution) with epoch <NA>, and
        "corrected" (y_c) or "predicted" (y_g) per epoch. Unknown values are left out.
        """
        flat = self._flat()
        k = len(self.classes)
        ids = np.array(self._ids, dtype=object)
        subset = np.array(self._subset, dtype=object)
        frames = []

        def add(rows: np.ndarray, epochs, kind: str, values: np.ndarray) -> None:
            known = ~np.isnan(values).any(1)
            rows, values = rows[known], values[known]
            epochs = epochs if epochs is None else epochs[known]
            frames.append(pd.DataFrame({
                "id": np.repeat(ids[rows], k),
                "subset": np.repeat(subset[rows], k),
                "epoch": pd.array(np.repeat(epochs, k) if epochs is not None else [pd.NA] * (len(rows) * k),
                                  dtype="Int64"),
                "kind": kind,
                "class": np.tile(np.array(self.classes, dtype=object), len(rows)),
                "value": values.reshape(-1),
            }))

        all_rows = np.arange(len(self._ids))
        add(all_rows, None, "observed", flat["observed"].reshape(-1, k))
        add(all_rows, None, "true", flat["true"].reshape(-1, k))
        with np.errstate(invalid="ignore", divide="ignore"):
            corrected = flat["rec_corrected_sum"] / flat["rec_count"][:, None]
            predicted = flat["rec_pred_sum"] / flat["rec_pred_count"][:, None]
        add(flat["rec_row"], flat["rec_epoch"], "corrected", corrected.reshape(-1, k))
        add(flat["rec_row"], flat["rec_epoch"], "predicted", predicted.reshape(-1, k))
        table = pd.concat(frames, ignore_index=True)
        table["subset"] = table["subset"].replace("", pd.NA)
        return table

    # ------------------------------------------------------------------ persistence

    def _flat(self) -> dict[str, Any]:
        """Everything as strings, lists of strings and numpy arrays."""
        k = len(self.classes)
        records = [(epoch, row, acc) for epoch in self.epochs for row, acc in sorted(self._epochs[epoch].items())]
        return {
            "format": FORMAT,
            "version": VERSION,
            "classes": list(self.classes),
            "ids": list(self._ids),
            "subset": list(self._subset),
            "observed": np.array(self._observed, dtype=np.float64).reshape(-1, k),
            "true": np.array(self._true, dtype=np.float64).reshape(-1, k),
            "rec_epoch": np.array([e for e, _, _ in records], dtype=np.int64),
            "rec_row": np.array([r for _, r, _ in records], dtype=np.int64),
            "rec_count": np.array([a.count for _, _, a in records], dtype=np.int64),
            "rec_corrected_sum": np.array([a.corrected_sum for _, _, a in records], dtype=np.float64).reshape(-1, k),
            "rec_pred_count": np.array([a.pred_count for _, _, a in records], dtype=np.int64),
            "rec_pred_sum": np.array([a.pred_sum for _, _, a in records], dtype=np.float64).reshape(-1, k),
        }

    def state_dict(self) -> dict[str, Any]:
        """Tensors, lists of strings and numbers only (safe for torch.load(weights_only=True))."""
        return {key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                for key, value in self._flat().items()}

    def load_state_dict(self, state: dict[str, Any], source: str = "state dict") -> None:
        """Replace this store's contents with `state` (from `state_dict` or `load`)."""
        missing = [key for key in ("version", *_STRING_KEYS, *_ARRAY_KEYS) if key not in state]
        if missing:
            raise SerError(f"{source}: not a label store, missing {missing}")
        if state["format"] != FORMAT or int(state["version"]) != VERSION:
            raise SerError(f"{source}: format {state['format']!r} v{state['version']}, expected {FORMAT!r} v{VERSION}")
        if tuple(state["classes"]) != self.classes:
            raise SerError(f"{source}: classes {list(state['classes'])} differ from this store's {list(self.classes)}")
        a = {key: as_numpy(state[key]) for key in _ARRAY_KEYS}
        n, k, m = len(state["ids"]), len(self.classes), len(a["rec_row"])
        expected = {"observed": (n, k), "true": (n, k), "rec_epoch": (m,), "rec_count": (m,),
                    "rec_corrected_sum": (m, k), "rec_pred_count": (m,), "rec_pred_sum": (m, k)}
        problems = [f"{key} has shape {a[key].shape}, expected {shape}"
                    for key, shape in expected.items() if a[key].shape != shape]
        if len(state["subset"]) != n or len(set(state["ids"])) != n:
            problems.append("ids are not unique or do not match the subsets")
        if m and not 0 <= a["rec_row"].min() <= a["rec_row"].max() < n:
            problems.append("records point at unknown ids")
        if problems:
            raise SerError(f"{source}: inconsistent label store: {'; '.join(problems)}")

        self._ids = [str(i) for i in state["ids"]]
        self._row = {sample_id: row for row, sample_id in enumerate(self._ids)}
        self._subset = [str(s) for s in state["subset"]]
        self._observed = list(a["observed"].copy())
        self._true = list(a["true"].copy())
        self._epochs = {}
        for j in range(m):
            acc = EpochSums(k)
            acc.corrected_sum = a["rec_corrected_sum"][j].copy()
            acc.count = int(a["rec_count"][j])
            acc.pred_sum = a["rec_pred_sum"][j].copy()
            acc.pred_count = int(a["rec_pred_count"][j])
            self._epochs.setdefault(int(a["rec_epoch"][j]), {})[int(a["rec_row"][j])] = acc

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], source: str = "state dict") -> "LabelHistory":
        if "classes" not in state:
            raise SerError(f"{source}: not a label store, missing ['classes']")
        store = cls(list(state["classes"]))
        store.load_state_dict(state, source)
        return store

    def save(self, path: str | os.PathLike) -> None:
        """Write an .npz archive (no pickled objects) atomically to exactly `path`."""
        arrays = {key: np.asarray(value, dtype=str) if key in _STRING_KEYS else np.asarray(value)
                  for key, value in self._flat().items()}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with atomic_write(path, "wb") as handle:
            handle.write(buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LabelHistory":
        """Read a store written by `save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                state = {key: archive[key] for key in archive.files}
        except FileNotFoundError:
            raise SerError(f"label store {path} does not exist") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise SerError(f"label store {path} is not a readable .npz archive: {exc}") from None
        for key in _STRING_KEYS:
            if key in state:
                state[key] = state[key].tolist()
        if "version" in state:
            state["version"] = int(state["version"])
        return cls.from_state_dict(state, source=str(path))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _js_where(p: np.ndarray, q: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.full(len(p), np.nan)
    out[valid] = js_divergence(p[valid], q[valid])
    return out
