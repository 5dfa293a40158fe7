"""Soft labels and the clear/ambiguous partition (paper §III-B, eqs. 1, 3, 5).

Each utterance has votes ``v_k`` from several annotators for the target classes, plus
``v_other`` for emotions outside them. With ``total = Σ_k v_k + v_other``:

- consensus label (eq. 1): the class with strictly more than ``threshold · total`` votes
  (threshold 1/2: a majority). The utterance is **clear** (S_A) when that class is a target
  class and **dropped** when it is ``other``;
- otherwise it is **ambiguous** (S_B) if it has at least one target vote, and its soft label
  is the vote proportions over the target classes (eq. 5, ``y_k = v_k / Σ_j v_j``); with no
  target vote it is dropped;
- multi-hot label (eq. 3): 1 for every target class with at least ``min_votes`` votes, used by
  the multi-label baseline.

Dropped utterances are kept in the partition table with ``subset == "dropped"`` and counted in
every summary, never silently lost.

`partition` returns a `Partition`: the table, plus the facts that hold for all its rows (the
target classes, the folder the audio paths are relative to, the manifest it came from) as typed
fields, not in ``DataFrame.attrs``, which pandas drops in many operations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import OTHER, DataConfig
from ..errors import ManifestError
from .manifest import VOTES_PREFIX, read_manifest, vote_classes

CLEAR, AMBIGUOUS, DROPPED = "clear", "ambiguous", "dropped"
SUBSETS = (CLEAR, AMBIGUOUS, DROPPED)
SOFT_PREFIX = "soft_"


def vote_matrix(frame: pd.DataFrame, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Target votes ``[N, K]`` in `classes` order and other votes ``[N]``.

    Votes for classes in the manifest that are not target classes count as other, so a
    manifest with richer labels (e.g. frustration) can be used with any target set.
    """
    in_manifest = vote_classes(frame.columns)
    missing = [c for c in classes if c not in in_manifest]
    if missing:
        source = frame.attrs.get("source", "manifest")
        raise ManifestError(f"{source}: no votes column for target class(es) {missing}; "
                            f"it has votes for {in_manifest}")
    target = frame[[VOTES_PREFIX + c for c in classes]].to_numpy(dtype=np.float64)
    non_target = [VOTES_PREFIX + c for c in in_manifest if c not in classes]
    if VOTES_PREFIX + OTHER in frame.columns:
        non_target.append(VOTES_PREFIX + OTHER)
    other = frame[non_target].to_numpy(dtype=np.float64).sum(axis=1) if non_target else np.zeros(len(frame))
    return target, other


def soft_labels(target_votes: np.ndarray) -> np.ndarray:
    """Eq. 5: vote proportions over the target classes; all-zero rows stay zero."""
    sums = target_votes.sum(axis=1, keepdims=True)
    return np.divide(target_votes, sums, out=np.zeros_like(target_votes), where=sums > 0)


def consensus_labels(target_votes: np.ndarray, other_votes: np.ndarray, threshold: float) -> np.ndarray:
    """Eq. 1: index of the class holding more than ``threshold`` of all votes, else -1.

    Index ``K`` (one past the target classes) means the majority went to other.
    """
    votes = np.concatenate([target_votes, other_votes[:, None]], axis=1)
    total = votes.sum(axis=1)
    winner = votes.argmax(axis=1)
    # A relative tolerance keeps exact ties (e.g. split IEMOCAP votes of 1/3 written to CSV)
    # from turning into majorities through float rounding.
    has_majority = votes.max(axis=1) > threshold * total * (1 + 1e-9)
    return np.where(has_majority, winner, -1)


def multi_hot_labels(target_votes: np.ndarray, min_votes: float | None = None) -> np.ndarray:
    """Eq. 3: 1 for every target class that received a vote (at least `min_votes` if given;
    fractional votes, e.g. an IEMOCAP evaluator's split vote, count)."""
    chosen = target_votes > 0 if min_votes is None else target_votes >= min_votes
    return chosen.astype(np.float64)


@dataclass(frozen=True)
class Partition:
    """A manifest's utterances, each clear, ambiguous or dropped, with its soft label.

    `table` is the manifest with ``subset``, ``label`` and ``soft_<class>`` columns added;
    `classes` orders the soft-label columns; audio paths in the table are relative to `root`;
    `source` names the manifest in error messages.
    """

    table: pd.DataFrame
    classes: tuple[str, ...]
    root: Path
    source: str = "manifest"

    def __len__(self) -> int:
        return len(self.table)

    def rows(self, mask) -> Partition:
        """The same partition restricted to the rows where `mask` (a boolean Series) holds."""
        return replace(self, table=self.table[mask])

    def of_subset(self, subset: str) -> Partition:
        return self.rows(self.table["subset"] == subset)

    def soft_matrix(self) -> np.ndarray:
        return soft_matrix(self.table, self.classes)


def partition(frame: pd.DataFrame, config: DataConfig | None = None, *, root: str | Path | None = None,
              source: str | None = None) -> Partition:
    """The manifest's `Partition`: ``subset``, ``label`` and ``soft_<class>`` columns added.

    ``label`` is the consensus class of clear rows (empty otherwise); ``soft_<class>`` is the
    one-hot consensus for clear rows, the eq. 5 soft label for ambiguous rows and 0 for
    dropped rows. `root` and `source` default to what `read_manifest` recorded of the file
    (the current folder and "manifest" for a frame built in memory).
    """
    config = config or DataConfig()
    classes = tuple(config.classes)
    target, other = vote_matrix(frame, classes)
    winner = consensus_labels(target, other, config.clear_threshold)
    num_classes = len(classes)

    is_clear = (winner >= 0) & (winner < num_classes)
    is_ambiguous = (winner < 0) & (target.sum(axis=1) > 0)
    subset = np.where(is_clear, CLEAR, np.where(is_ambiguous, AMBIGUOUS, DROPPED))

    soft = np.zeros_like(target)
    soft[is_clear, winner[is_clear]] = 1.0
    soft[is_ambiguous] = soft_labels(target[is_ambiguous])

    result = frame.copy()
    result["subset"] = subset
    result["label"] = [classes[w] if c else "" for w, c in zip(winner, is_clear)]
    for k, name in enumerate(classes):
        result[SOFT_PREFIX + name] = soft[:, k]
    result.attrs = {}  # the facts live in the Partition's fields only, one owner each
    return Partition(result, classes, Path(root if root is not None else frame.attrs.get("root", ".")),
                     source if source is not None else frame.attrs.get("source", "manifest"))


def load_partition(manifest_path: str | Path, config: DataConfig) -> Partition:
    """`partition` of a manifest file, whose audio files must all exist."""
    return partition(read_manifest(manifest_path, check_audio=True), config)


def soft_matrix(table: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    """The ``soft_<class>`` columns of (rows of) a partition table as an ``[N, K]`` array."""
    return table[[SOFT_PREFIX + c for c in classes]].to_numpy(dtype=np.float64)


def summarize(parted: Partition) -> dict[str, Any]:
    """Counts for `ser partition --json` and the Table II-style report."""
    classes, table = parted.classes, parted.table
    clear = table[table["subset"] == CLEAR]
    summary = {
        "classes": list(classes),
        "total": int(len(table)),
        **{name: int((table["subset"] == name).sum()) for name in SUBSETS},
        "clear_per_class": {c: int((clear["label"] == c).sum()) for c in classes},
        "by_speaker": _group_counts(table, "speaker", classes),
    }
    if "session" in table.columns:
        summary["by_session"] = _group_counts(table, "session", classes)
    summary["ambiguous_fraction"] = summary[AMBIGUOUS] / summary["total"] if summary["total"] else 0.0
    return summary


def _group_counts(table: pd.DataFrame, column: str, classes) -> dict[str, dict[str, Any]]:
    groups = {}
    for key, group in table.groupby(column, sort=True):
        clear = group[group["subset"] == CLEAR]
        groups[str(key)] = {
            **{name: int((group["subset"] == name).sum()) for name in SUBSETS},
            "clear_per_class": {c: int((clear["label"] == c).sum()) for c in classes},
        }
    return groups


def format_table(summary: dict[str, Any], markdown: bool = False) -> str:
    """A Table II-style table (plain text or markdown): clear samples per class, ambiguous
    and dropped counts, per session and per speaker."""
    classes = summary["classes"]
    header = ["", *[c[:3] for c in classes], "clear", "ambiguous", "dropped", "total"]
    sections = [("session", summary.get("by_session", {})), ("speaker", summary["by_speaker"])]
    rows = []
    for title, groups in sections:
        if not groups:
            continue
        rows.append([f"[{title}]"] + [""] * (len(header) - 1))
        rows += [_table_row(name, counts, classes) for name, counts in groups.items()]
    rows.append(_table_row("all", summary, classes))
    if markdown:
        lines = ["| " + " | ".join(str(v) for v in r) + " |" for r in [header, *rows]]
        lines.insert(1, "|" + "---|" * len(header))
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _table_row(name: str, counts: dict[str, Any], classes) -> list:
    total = counts[CLEAR] + counts[AMBIGUOUS] + counts[DROPPED]
    return [name, *[counts["clear_per_class"][c] for c in classes],
            counts[CLEAR], counts[AMBIGUOUS], counts[DROPPED], total]
