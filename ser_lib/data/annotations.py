"""Annotator-level labels: an optional long-format file beside a manifest.

``annotations.csv`` sits in the manifest's folder with one row per label an annotator gave:

    utt_id,annotator,label
    Ses01F_u0000,Ses01-A3,anger

- ``utt_id``: an utterance of the manifest;
- ``annotator``: an id that names the same person wherever it appears (what label aggregation,
  e.g. Dawid-Skene, estimates a confusion matrix for);
- ``label``: the emotion given, a target class of the manifest or any other emotion name
  (counted as ``other`` by the vote columns).

An annotator may give one utterance several labels (IEMOCAP's evaluators may tag several
emotions), so (utt_id, annotator) can repeat. The vote columns of the manifest stay the
interface every method reads; this file is for the methods that need to know who voted what.
Like the manifest, it is validated in one pass: every bad row is reported with its line.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ..config import OTHER
from ..errors import ManifestError
from ..files import atomic_write_text
from .manifest import FIRST_DATA_LINE, RowProblem, format_problems, read_csv_text

ANNOTATIONS_CSV = "annotations.csv"
COLUMNS = ("utt_id", "annotator", "label")


def annotations_path(manifest_path: str | Path) -> Path:
    """Where a manifest's annotations are: ``annotations.csv`` in its folder."""
    return Path(manifest_path).parent / ANNOTATIONS_CSV


def validate_annotations(path: str | Path, utt_ids: set[str]) -> list[RowProblem]:
    """Every problem of the annotations at `path` against the manifest's `utt_ids`."""
    frame = read_csv_text(Path(path), "annotations")
    missing = [c for c in COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in COLUMNS]
    if missing or extra:
        return [RowProblem(1, f"columns must be {list(COLUMNS)}, got {list(frame.columns)}")]
    problems = []
    for index, row in enumerate(frame.to_dict("records")):
        line = index + FIRST_DATA_LINE
        empty = [c for c in COLUMNS if not row[c].strip()]
        if empty:
            problems.append(RowProblem(line, f"empty {', '.join(empty)}"))
        elif row["utt_id"] not in utt_ids:
            problems.append(RowProblem(line, f"utt_id {row['utt_id']!r} is not in the manifest"))
    return problems


def read_annotations(manifest_path: str | Path, utt_ids: set[str]) -> pd.DataFrame | None:
    """The manifest's annotations (None when it has none), validated; raises `ManifestError`
    listing every bad row."""
    path = annotations_path(manifest_path)
    if not path.exists():
        return None
    problems = validate_annotations(path, utt_ids)
    if problems:
        raise ManifestError(format_problems(path, problems))
    return read_csv_text(path, "annotations")


def write_annotations(frame: pd.DataFrame, manifest_path: str | Path) -> Path:
    """Write `frame` (columns `COLUMNS`) beside the manifest, atomically."""
    path = annotations_path(manifest_path)
    buffer = io.StringIO()
    frame[list(COLUMNS)].to_csv(buffer, index=False, lineterminator="\n")
    atomic_write_text(path, buffer.getvalue())
    return path


def vote_counts(annotations: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """Votes per utterance (rows) and class (columns ``votes_<class>``, then ``votes_other``),
    one per label: what the manifest's vote columns hold when every label counts one vote."""
    label = annotations["label"].where(annotations["label"].isin(classes), OTHER)
    counts = pd.crosstab(annotations["utt_id"], label)
    counts = counts.reindex(columns=[*classes, OTHER], fill_value=0)
    counts.columns = [f"votes_{c}" for c in counts.columns]
    return counts
