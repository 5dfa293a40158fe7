"""The label store: training's record of each tracked sample's corrected label (eq. 6).

The training loop registers the tracked samples (the ambiguous ones, or every row under SELC) and
calls `record` after every batch with the batch's sample ids, observed labels y_s, corrected
labels y_c and predictions y_g. `running` gives the label that `correction.update=running`
continues. What the store holds, how it is read, analysed and saved is its base class,
`analysis.label_history.LabelHistory`.

Samples are keyed by a string id chosen by the caller (an utt_id, or a segment id when segments
should be tracked separately).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..analysis.divergence import as_numpy
from ..analysis.label_history import LabelHistory, EpochSums


class LabelStore(LabelHistory):
    """A label history that training writes, batch by batch."""

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
                acc = accumulators[row] = EpochSums(len(self.classes))
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
