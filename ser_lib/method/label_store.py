"""A record of how each ambiguous sample's label is corrected during training (eq. 6).

The training loop calls `record` after every batch with the batch's sample ids, observed
labels y_s, corrected labels y_c and predictions y_g. The store keeps, per sample and
epoch, the mean y_c (and y_g) seen during that epoch -- a sample seen several times in
an epoch is averaged -- and y_s once. The label-drift notebook reads it back with
`history`, `final`, `drift` or the long table of `to_dataframe`.

Samples are keyed by a string id chosen by the caller (an utt_id, or a segment id when
segments should be tracked separately). Persistence needs no pickle: `save` writes an
.npz archive atomically, and `state_dict` holds only tensors, lists, strings and numbers,
so it can be embedded in a checkpoint read with `torch.load(weights_only=True)`.
Sums and counts are stored, not means, so a store restored mid-epoch keeps averaging.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ..files import atomic_write
from ..analysis.divergence import DISTANCES, as_numpy, js_divergence
from ..errors import SerError

FORMAT = "ser_lib.LabelStore"
VERSION = 1
KINDS = ("corrected", "predicted")
_STRING_KEYS = ("format", "classes", "ids", "subset")
_ARRAY_KEYS = (
    "observed", "true", "rec_epoch", "rec_row", "rec_count", "rec_corrected_sum", "rec_pred_count", "rec_pred_sum",
)


class _Accumulator:
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


class LabelStore:
    """Per-epoch corrected labels of ambiguous samples, keyed by sample id."""

    def __init__(self, classes: Sequence[str]):
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be at least two distinct names, got {classes!r}")
        self.classes = tuple(str(c) for c in classes)
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._observed: list[np.ndarray] = []
        self._subset: list[str] = []  # "" = unknown
        self._true: list[np.ndarray] = []  # NaN row = unknown
        self._epochs: dict[int, dict[int, _Accumulator]] = {}

    # ------------------------------------------------------------------ writing

    def register(self, ids: Sequence[str], y_soft, subset: str | Sequence[str] | None = None, true=None) -> None:
        """Add samples with their observed label y_s [N, K] and optional metadata.

        subset: one name for all (e.g. "train") or one per sample; true: the known true
        distribution [N, K] (synthetic corpora). Registering a known id again checks that
        y_s is unchanged and fills in metadata that was unknown.
        """
        ids = list(ids)
        y_soft = self._rows(y_soft, len(ids), "observed labels")
        subsets = [subset] * len(ids) if subset is None or isinstance(subset, str) else list(subset)
        if len(subsets) != len(ids):
            raise ValueError(f"got {len(subsets)} subset names for {len(ids)} ids")
        true = None if true is None else self._rows(true, len(ids), "true distributions")
        self._check_ids(ids, y_soft, range(len(ids)))
        for i, sample_id in enumerate(ids):
            row = self._register_one(sample_id, y_soft[i])
            if subsets[i] is not None:
                self._subset[row] = str(subsets[i])
            if true is not None:
                self._true[row] = true[i].copy()

    def record(self, epoch: int, ids: Sequence[str], y_soft, y_corrected, y_pred=None, mask=None) -> None:
        """Add one batch: ids [B], y_s, y_c and optionally y_g, each [B, K].

        mask: optional bool [B] selecting the rows to keep (e.g. the batch's ambiguous
        rows). Values are averaged per sample within the epoch.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        ids = list(ids)
        n = len(ids)
        y_soft = self._rows(y_soft, n, "observed labels")
        y_corrected = self._rows(y_corrected, n, "corrected labels")
        y_pred = None if y_pred is None else self._rows(y_pred, n, "predictions")
        keep = np.ones(n, dtype=bool) if mask is None else as_numpy(mask).astype(bool).reshape(-1)
        if keep.shape != (n,):
            raise ValueError(f"mask must have shape [{n}], got {keep.shape}")
        for what, values in (("corrected labels", y_corrected), ("predictions", y_pred)):
            bad = [] if values is None else [ids[i] for i in np.flatnonzero(keep) if not np.isfinite(values[i]).all()]
            if bad:
                raise ValueError(f"non-finite {what} for samples {bad[:10]}")
        self._check_ids(ids, y_soft, np.flatnonzero(keep))  # before any change: a bad batch adds nothing
        if not keep.any():
            return  # an all-clear batch must not create an empty epoch
        accumulators = self._epochs.setdefault(int(epoch), {})
        for i in np.flatnonzero(keep):
            row = self._register_one(ids[i], y_soft[i])
            acc = accumulators.get(row)
            if acc is None:
                acc = accumulators[row] = _Accumulator(len(self.classes))
            acc.corrected_sum += y_corrected[i]
            acc.count += 1
            if y_pred is not None:
                acc.pred_sum += y_pred[i]
                acc.pred_count += 1

    def _rows(self, values, n: int, what: str) -> np.ndarray:
        array = as_numpy(values)
        if array.shape != (n, len(self.classes)):
            raise ValueError(f"{what} must have shape [{n}, {len(self.classes)}], got {array.shape}")
        return array

    def _check_ids(self, ids: Sequence[str], y_soft: np.ndarray, rows: Iterable[int]) -> None:
        """Ids are strings, y_s finite, and one id never comes with two different y_s."""
        pending: dict[str, np.ndarray] = {}  # new ids of this batch
        for i in rows:
            sample_id = ids[i]
            if not isinstance(sample_id, str):
                raise ValueError(f"sample ids must be strings, got {sample_id!r}")
            if not np.isfinite(y_soft[i]).all():
                raise ValueError(f"non-finite observed label for sample {sample_id!r}: {y_soft[i]}")
            row = self._row.get(sample_id)
            known = self._observed[row] if row is not None else pending.setdefault(sample_id, y_soft[i])
            if not np.allclose(known, y_soft[i], atol=1e-6):
                raise ValueError(
                    f"sample {sample_id!r} has observed label {known} but also comes with {y_soft[i]}; "
                    "are two samples sharing one id?"
                )

    def _register_one(self, sample_id: str, y_soft: np.ndarray) -> int:
        """Row of a (checked) id, adding it with its observed label if new."""
        row = self._row.get(sample_id)
        if row is None:
            row = self._row[sample_id] = len(self._ids)
            self._ids.append(sample_id)
            self._observed.append(y_soft.copy())
            self._subset.append("")
            self._true.append(np.full(len(self.classes), np.nan))
        return row

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
            raise KeyError(f"no sample {sample_id!r} in the label store")
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

    def running(self, ids: Sequence[str], epoch: int) -> np.ndarray:
        """Each sample's label as `correction.update=running` continues it in `epoch` [N, K]: its
        mean corrected label of the latest epoch before `epoch` that recorded it, else its
        observed y_s."""
        earlier = [e for e in self.epochs if e < epoch]
        out = np.empty((len(ids), len(self.classes)))
        for n, sample_id in enumerate(ids):
            row = self._lookup(sample_id)
            out[n] = self._observed[row]
            for e in reversed(earlier):
                acc = self._epochs[e].get(row)
                if acc is not None:
                    out[n] = acc.mean("corrected")
                    break
        return out

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
            acc = _Accumulator(k)
            acc.corrected_sum = a["rec_corrected_sum"][j].copy()
            acc.count = int(a["rec_count"][j])
            acc.pred_sum = a["rec_pred_sum"][j].copy()
            acc.pred_count = int(a["rec_pred_count"][j])
            self._epochs.setdefault(int(a["rec_epoch"][j]), {})[int(a["rec_row"][j])] = acc

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], source: str = "state dict") -> "LabelStore":
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
    def load(cls, path: str | os.PathLike) -> "LabelStore":
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

