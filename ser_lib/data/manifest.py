"""The corpus-agnostic manifest: one CSV per corpus, so a new corpus needs no code change.

Columns:
- required: ``utt_id`` (unique), ``path`` (relative to the manifest's folder), ``speaker``;
- optional: ``session``, ``start`` and ``end`` (seconds, for utterances cut from longer
  files), ``duration``;
- optional speaker and recording metadata: ``sex`` (one value per speaker; K-fold evaluation
  balances its folds by it), ``age``, ``intended_emotion`` and ``intensity`` (what an acted
  corpus asked the actor for, e.g. CREMA-D's);
- ``votes_<class>``: one per emotion class, non-negative numbers; ``votes_other`` counts votes
  for emotions outside the target classes;
- ``true_<class>``: an optional known true emotion distribution (synthetic corpora).

`validate_manifest` reports every bad row at once; `read_manifest` raises a `ManifestError`
listing them, so a user fixes a file in one pass instead of one error per run.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from ..config import OTHER
from ..errors import ManifestError
from ..files import atomic_write_text

REQUIRED_COLUMNS = ("utt_id", "path", "speaker")
OPTIONAL_COLUMNS = ("session", "start", "end", "duration", "sex", "age", "intended_emotion", "intensity")
VOTES_PREFIX = "votes_"
TRUE_PREFIX = "true_"
# The first data row of a CSV is line 2 of the file (line 1 is the header).
FIRST_DATA_LINE = 2


@dataclass(frozen=True)
class RowProblem:
    line: int  # line number in the CSV file; 1 is the header
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def vote_columns(columns) -> list[str]:
    return [c for c in columns if c.startswith(VOTES_PREFIX)]


def true_columns(columns) -> list[str]:
    return [c for c in columns if c.startswith(TRUE_PREFIX)]


def vote_classes(columns) -> list[str]:
    """Class names that have a votes column, ``other`` excluded, in file order."""
    return [c[len(VOTES_PREFIX):] for c in vote_columns(columns) if c != VOTES_PREFIX + OTHER]


def validate_manifest(path: str | Path, check_audio: bool = True, labelled: bool = True) -> list[RowProblem]:
    """Every problem in the manifest at `path`; an empty list means it is valid.

    `labelled=False` reads an audio list (pretraining speech): vote columns are then optional
    and, when present, still checked."""
    path = Path(path)
    frame = read_csv_text(path)
    problems = _column_problems(frame.columns, labelled)
    if any(p.line == 1 for p in problems if "missing required" in p.reason):
        return problems
    votes = vote_columns(frame.columns)
    seen_ids: dict[str, int] = {}
    for index, row in enumerate(frame.to_dict("records")):
        line = index + FIRST_DATA_LINE
        problems += [RowProblem(line, r) for r in _row_problems(row, votes, path.parent, check_audio)]
        utt_id = row.get("utt_id", "")
        if utt_id:
            if utt_id in seen_ids:
                problems.append(RowProblem(line, f"duplicate utt_id {utt_id!r} (first on line {seen_ids[utt_id]})"))
            else:
                seen_ids[utt_id] = line
    return problems


def read_manifest(path: str | Path, check_audio: bool = False, labelled: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; numeric columns are parsed, ``path`` stays relative.

    The manifest's folder is stored in ``frame.attrs["root"]`` so audio paths can be resolved
    with `audio_path`. Audio files are checked only with ``check_audio=True``: reading labels
    (e.g. for `ser partition`) must work without the audio present.
    """
    path = Path(path)
    problems = validate_manifest(path, check_audio=check_audio, labelled=labelled)
    if problems:
        raise ManifestError(format_problems(path, problems))
    frame = read_csv_text(path)
    numeric = vote_columns(frame.columns) + true_columns(frame.columns)
    numeric += [c for c in ("start", "end", "duration") if c in frame.columns]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column].replace("", math.nan))
    frame.attrs["root"] = str(path.parent.resolve())
    frame.attrs["source"] = str(path)
    return frame


def audio_path(frame: pd.DataFrame, relative: str) -> Path:
    return Path(frame.attrs["root"]) / relative


def utterance_durations(frame: pd.DataFrame, root: str | Path) -> np.ndarray:
    """Seconds per utterance: ``end - start`` when given, else ``duration``, else the header of the
    file (its ``path`` relative to `root`)."""
    durations = np.full(len(frame), np.nan)
    if "start" in frame.columns and "end" in frame.columns:
        durations = (frame["end"] - frame["start"]).to_numpy(dtype=float)
    if "duration" in frame.columns:
        durations = np.where(np.isnan(durations), frame["duration"].to_numpy(dtype=float), durations)
    for i in np.flatnonzero(np.isnan(durations)):
        path = Path(root) / frame["path"].iloc[i]
        try:
            durations[i] = soundfile.info(str(path)).duration
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise ManifestError(f"{path}: cannot read the audio header ({exc}) of utt_id "
                                f"{frame['utt_id'].iloc[i]!r}") from None
    return durations


def write_manifest(frame: pd.DataFrame, path: str | Path, labelled: bool = True) -> Path:
    """Write `frame` as a manifest atomically, columns in canonical order (`labelled=False`: an
    audio list without votes)."""
    path = Path(path)
    problems = _column_problems(frame.columns, labelled)
    if problems:
        raise ManifestError(format_problems(path, problems))
    frame = frame[_canonical_order(frame.columns)]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n", float_format="%.12g")
    atomic_write_text(path, buffer.getvalue())
    return path


def format_problems(path: Path, problems: list[RowProblem]) -> str:
    lines = [f"{path}: {len(problems)} problem(s)"] + [f"  {p}" for p in problems]
    return "\n".join(lines)


def read_csv_text(path: Path, what: str = "manifest") -> pd.DataFrame:
    """A CSV file with every cell as text; a missing, non-UTF-8 or unparsable file is a
    `ManifestError` naming it (`what` says which kind of file it is)."""
    if not path.is_file():
        raise ManifestError(f"{path}: {what} file does not exist")
    try:
        # Everything as text: validation decides what is numeric and reports what is not.
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise ManifestError(f"{path}: not a readable CSV file: {exc}") from None


def _column_problems(columns, labelled: bool = True) -> list[RowProblem]:
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(RowProblem(1, f"missing required column(s) {missing}"))
    if labelled and not vote_classes(columns):
        problems.append(RowProblem(1, f"no {VOTES_PREFIX}<class> columns"))
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    unknown = [c for c in columns if c not in known and not c.startswith((VOTES_PREFIX, TRUE_PREFIX))]
    if unknown:
        problems.append(RowProblem(1, f"unknown column(s) {unknown}; allowed: {sorted(known)} "
                                      f"and {VOTES_PREFIX}<class>, {TRUE_PREFIX}<class>"))
    duplicated = sorted({c for c in columns if list(columns).count(c) > 1})
    if duplicated:
        problems.append(RowProblem(1, f"duplicated column(s) {duplicated}"))
    return problems


def _row_problems(row: dict, votes: list[str], root: Path, check_audio: bool) -> list[str]:
    problems = []
    for column in REQUIRED_COLUMNS:
        if not str(row.get(column, "")).strip():
            problems.append(f"missing {column}")
    vote_values = []
    for column in votes:
        value = _number(row.get(column, ""))
        if value is None:
            problems.append(f"{column}={row.get(column)!r} is not a number")
        elif value < 0:
            problems.append(f"{column}={value:g} is negative")
        else:
            vote_values.append(value)
    if votes and len(vote_values) == len(votes) and sum(vote_values) == 0:
        problems.append("all votes are zero")
    for column in ("start", "end", "duration"):
        raw = str(row.get(column, "")).strip()
        if raw and (_number(raw) is None or _number(raw) < 0):
            problems.append(f"{column}={raw!r} is not a non-negative number")
    start, end = _number(row.get("start", "")), _number(row.get("end", ""))
    if start is not None and end is not None and end <= start:
        problems.append(f"end={end:g} is not after start={start:g}")
    if check_audio and str(row.get("path", "")).strip():
        audio = root / str(row["path"])
        if not audio.is_file():
            problems.append(f"audio file {audio} does not exist")
    return problems


def _number(raw) -> float | None:
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _canonical_order(columns) -> list[str]:
    columns = list(columns)
    head = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in columns]
    votes = [c for c in vote_columns(columns) if c != VOTES_PREFIX + OTHER]
    other = [VOTES_PREFIX + OTHER] if VOTES_PREFIX + OTHER in columns else []
    return head + votes + other + true_columns(columns)
