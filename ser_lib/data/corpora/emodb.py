"""EmoDB (Berlin Database of Emotional Speech) as a manifest with listening-test votes.

EmoDB ships one recording per file ``wav/SSTTTEV.wav`` (speaker, text, emotion letter,
version) and its listening test ``erkennung.txt``: for each of 816 recordings, the share of
the 20 listeners who recognised the intended emotion (``erkannt``, in %). Which emotions the
other listeners chose was not recorded, so the votes we can rebuild are partial:

- the intended emotion gets ``round(erkannt / 100 * 20)`` votes, rounded half up. Some rows
  were rated by 21 listeners (95.24 % = 20/21, 61.9 % = 13/21); rounding maps them onto the
  nearest count out of 20 (19 and 12 here), so every row sums to 20 votes;
- the remaining listeners go to ``votes_other``: we cannot tell which class they chose;
- a recording of an emotion outside the target classes (boredom, disgust and fear with the
  default classes) puts all 20 votes in ``votes_other``, so the partition drops it.

The table is ISO-8859-1 text, tab separated, with decimal commas and non-breaking-space
padding. A copy re-saved as UTF-8 is accepted as well: a file that decodes as UTF-8 and holds
non-ASCII characters is read as UTF-8. The Latin-1 original never does (its 0xA0 padding
bytes are not valid UTF-8), so the two cannot be confused.

The corpus ships only the recordings the listeners recognised well (the README: >= 80 %), so
most table rows have no wav; they are counted in the summary, never silently lost.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ...config import OTHER, DataConfig
from ...errors import CorpusError
from ..audio import audio_duration
from ..manifest import VOTES_PREFIX, write_manifest
from .text import read_legacy_text

LISTENERS = 20
TABLE_NAME = "erkennung.txt"
WAV_DIR = "wav"
TABLE_HEADER = ("Nr.", "Satz", "erkannt", "natuerlich")
EMOTIONS = {
    "W": "anger",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happiness",  # Freude
    "T": "sadness",  # Trauer
    "N": "neutral",
}
# Speaker (2 digits), text id (a01 .. b10), emotion letter, version letter.
FILE_NAME = re.compile(r"(?P<speaker>\d{2})(?P<text>[a-z]\d{2})(?P<emotion>[A-Za-z])(?P<version>[a-z])\.wav")
PERCENT = re.compile(r"\d{1,3}(?:[.,]\d+)?")


@dataclass
class ListeningTest:
    """The parsed ``erkennung.txt``: the recognition rate (%) per file name."""

    path: Path
    encoding: str
    recognised: dict[str, float]


@dataclass
class EmodbSummary:
    manifest: str
    utterances: int
    classes: list[str]
    per_emotion: dict[str, int]
    per_speaker: dict[str, int]
    # Rows of emotions outside the target classes: all 20 votes are in votes_other.
    outside_classes: dict[str, int]
    table_rows: int
    table_rows_without_wav: int
    table_encoding: str
    vote_rule: str = field(default=f"intended emotion: round_half_up(erkannt / 100 * {LISTENERS}); "
                                   f"the rest of the {LISTENERS} listeners: votes_other")


def build_emodb_manifest(root: str | Path, out: str | Path, classes: Sequence[str] | None = None) -> EmodbSummary:
    """Write the manifest of the EmoDB copy in `root` to `out`: one row per wav file."""
    root, out = Path(root), Path(out)
    classes = tuple(classes) if classes is not None else DataConfig().classes
    if not root.is_dir():
        raise CorpusError(f"{root}: the EmoDB folder does not exist")
    table = read_listening_test(root / TABLE_NAME)
    wavs = _wav_files(root / WAV_DIR)

    problems = []
    for wav in wavs:
        problem = file_name_problem(wav.name)
        if problem is None and wav.name not in table.recognised:
            problem = f"not listed in {table.path}"
        if problem is not None:
            problems.append(f"{wav}: {problem}")
    if problems:
        raise CorpusError(f"{root / WAV_DIR}: {len(problems)} bad wav file(s)\n  " + "\n  ".join(problems))

    rows = [_manifest_row(wav, table.recognised[wav.name], classes, out.parent) for wav in wavs]
    write_manifest(pd.DataFrame(rows), out)

    emotions = [EMOTIONS[FILE_NAME.fullmatch(w.name)["emotion"]] for w in wavs]
    present = {w.name for w in wavs}
    return EmodbSummary(
        manifest=str(out),
        utterances=len(rows),
        classes=list(classes),
        per_emotion=dict(sorted(Counter(emotions).items())),
        per_speaker=dict(sorted(Counter(row["speaker"] for row in rows).items())),
        outside_classes=dict(sorted(Counter(e for e in emotions if e not in classes).items())),
        table_rows=len(table.recognised),
        table_rows_without_wav=sum(1 for name in table.recognised if name not in present),
        table_encoding=table.encoding,
    )


def intended_votes(recognised_percent: float) -> int:
    """Votes (out of `LISTENERS`) for the intended emotion, rounded half up.

    Half-way cases (e.g. 52.5 %) are exact binary fractions, so float arithmetic rounds
    them reliably.
    """
    return math.floor(recognised_percent * LISTENERS / 100 + 0.5)


def read_listening_test(path: str | Path) -> ListeningTest:
    """Parse ``erkennung.txt``; every malformed line is reported at once in a `CorpusError`."""
    path = Path(path)
    text, encoding = _decode_table(path)
    lines = text.split("\n")
    header = [f.strip() for f in lines[0].split("\t")] if lines else []
    if tuple(header) != TABLE_HEADER:
        raise CorpusError(f"{path}: line 1: expected the header {list(TABLE_HEADER)} "
                          f"(tab separated), got {lines[0][:120]!r}")
    recognised, first_line, problems = {}, {}, []
    for number, line in enumerate(lines[1:], start=2):
        # str.strip() also removes the NBSP padding (U+00A0 is whitespace) and a CR of CRLF.
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != len(TABLE_HEADER):
            problems.append(f"line {number}: expected {len(TABLE_HEADER)} tab-separated fields, "
                            f"got {len(fields)}: {line.strip()!r}")
            continue
        row_number, name, rate, natural = fields
        line_problems = []
        if not row_number.isdigit():
            line_problems.append(f"Nr. {row_number!r} is not a row number")
        name_problem = file_name_problem(name)
        if name_problem:
            line_problems.append(f"Satz {name!r}: {name_problem}")
        elif name in first_line:
            line_problems.append(f"Satz {name!r} is listed twice (first on line {first_line[name]})")
        for column, value in (("erkannt", rate), ("natuerlich", natural)):
            if _percent(value) is None:
                line_problems.append(f"{column} {value!r} is not a percentage in [0, 100] "
                                     f"(decimal comma, e.g. 85,71)")
        if line_problems:
            problems += [f"line {number}: {p}" for p in line_problems]
            continue
        recognised[name], first_line[name] = _percent(rate), number
    if problems:
        raise CorpusError(f"{path}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))
    if not recognised:
        raise CorpusError(f"{path}: the listening-test table has no rows")
    return ListeningTest(path=path, encoding=encoding, recognised=recognised)


def file_name_problem(name: str) -> str | None:
    """Why `name` is not an EmoDB file name ``SSTTTEV.wav``, or None when it is one."""
    match = FILE_NAME.fullmatch(name)
    if match is None:
        return ("does not match the EmoDB pattern SSTTTEV.wav (2-digit speaker, text id such as "
                "a01, emotion letter, version letter)")
    if match["emotion"] not in EMOTIONS:
        known = ", ".join(f"{k} {v}" for k, v in EMOTIONS.items())
        return f"unknown emotion letter {match['emotion']!r} (known: {known})"
    return None


def relative_path(target: Path, start: Path) -> str:
    """`target` relative to the folder `start`, with forward slashes (portable manifests).

    Both are resolved first, so ``..`` steps are taken on the real folders, as the OS does
    when the manifest's reader joins them. Without a relative path (another drive on
    Windows) the absolute path is kept; a manifest reader joins it unchanged.
    """
    target, start = Path(target).resolve(), Path(start).resolve()
    try:
        return Path(os.path.relpath(target, start)).as_posix()
    except ValueError:
        return target.as_posix()


def _manifest_row(wav: Path, recognised: float, classes: tuple[str, ...], manifest_dir: Path) -> dict:
    match = FILE_NAME.fullmatch(wav.name)
    emotion = EMOTIONS[match["emotion"]]
    votes = dict.fromkeys(classes, 0)
    if emotion in classes:
        votes[emotion] = intended_votes(recognised)
    other = LISTENERS - sum(votes.values())
    return {
        "utt_id": wav.stem,
        "path": relative_path(wav, manifest_dir),
        "speaker": match["speaker"],
        "duration": audio_duration(wav),
        **{VOTES_PREFIX + c: v for c, v in votes.items()},
        VOTES_PREFIX + OTHER: other,
    }


def _decode_table(path: Path) -> tuple[str, str]:
    if not path.exists():
        raise CorpusError(f"{path}: the listening-test table is missing (expected {TABLE_NAME} "
                          f"next to {WAV_DIR}/ in the EmoDB folder)")
    text, encoding = read_legacy_text(path, "listening-test table")
    return text, "latin-1" if text.isascii() else encoding


def _percent(raw: str) -> float | None:
    if not PERCENT.fullmatch(raw):
        return None
    value = float(raw.replace(",", "."))
    return value if 0.0 <= value <= 100.0 else None


def _wav_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise CorpusError(f"{folder}: the EmoDB wav folder does not exist")
    wavs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    if not wavs:
        raise CorpusError(f"{folder}: no .wav files in the EmoDB wav folder")
    return wavs
