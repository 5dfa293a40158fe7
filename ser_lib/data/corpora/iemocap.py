"""IEMOCAP as a manifest with per-evaluator categorical votes.

IEMOCAP is licensed: users bring their own copy (a folder with ``Session1`` .. ``Session5``).
Labels come from ``SessionN/dialog/EmoEvaluation/Ses*.txt``, one block per turn::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]
    C-E2:	Neutral;	()
    C-E3:	Frustration; Anger;	()
    C-F1:	Neutral;	(curious)
    A-E3:	val 3; act 2; dom  2;	()

The header gives start and end (seconds in the dialog recording), the turn name and the
corpus' own consensus label; each ``C-`` line is one evaluator's categorical tags: ``C-E<n>``
external evaluators, ``C-F<n>`` / ``C-M<n>`` the actors' self-assessments (counted only with
``self_assessments=True``). ``A-`` lines (valence, activation, dominance) are not used.

Votes:
- every evaluator weighs the same: with ``multi_tag="split"`` (default) an evaluator's one
  vote is shared equally among their tags, so votes may be fractional; with ``"each"`` every
  tag is one full vote. A tag repeated by the same evaluator counts once;
- Excited is merged into happiness (the usual 4-class IEMOCAP setup); tags outside the
  target classes (Frustration, Surprise, Fear, Disgust, Other) count as ``votes_other``;
- who gave which tag is written to ``annotations.csv`` beside the manifest (`annotations_frame`),
  for the methods that aggregate annotators.

Speaker: the session plus the gender letter of the turn name's *last* part
(``Ses01F_impro01_M012`` -> ``Ses01M``); the ``F`` of the dialog prefix only says who wore
the motion-capture markers.

Audio: by default (``audio="dialog"``) ``path`` is the dialog recording
``SessionN/dialog/wav/<dialog>.wav`` and ``start``/``end`` cut the turn from it. The dialog
recordings have two channels (microphones), which the audio loader mixes down, so the other
actor is heard where the two overlap. ``audio="sentences"`` uses the mono per-turn files
``SessionN/sentences/wav/<dialog>/<turn>.wav`` instead (without start/end: they would cut
the file again), which is what most SER work on IEMOCAP uses.

Self-check: with all five sessions present, the turns whose header label is neu, ang, sad,
hap or exc (exc counted as hap) must match IEMOCAP's published 4-class counts per speaker
(5531 in all); a mismatch means an incomplete or modified copy and is an error.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ...config import OTHER, DataConfig
from ...errors import ConfigError, CorpusError
from ..annotations import write_annotations
from ..audio import audio_duration
from ..manifest import VOTES_PREFIX, write_manifest
from .text import read_legacy_text
from .emodb import relative_path

SESSIONS = (1, 2, 3, 4, 5)
MULTI_TAG_RULES = ("split", "each")
AUDIO_SOURCES = ("dialog", "sentences")
# Categorical tags (matched case-insensitively) -> emotion; Excited merges into happiness.
TAG_EMOTIONS = {
    "neutral": "neutral",
    "anger": "anger",
    "sadness": "sadness",
    "happiness": "happiness",
    "excited": "happiness",
    "frustration": "frustration",
    "surprise": "surprise",
    "fear": "fear",
    "disgust": "disgust",
    "other": OTHER,
}
HEADER_LABELS = ("neu", "fru", "ang", "sad", "hap", "exc", "sur", "fea", "dis", "oth", "xxx")
CONSENSUS_LABELS = ("neu", "ang", "sad", "hap", "exc")
# IEMOCAP's published 4-class consensus counts per speaker (5531 turns in all).
EXPECTED_CONSENSUS = {
    "Ses01F": 528, "Ses01M": 557, "Ses02F": 481, "Ses02M": 542, "Ses03F": 522,
    "Ses03M": 629, "Ses04F": 528, "Ses04M": 503, "Ses05F": 590, "Ses05M": 651,
}
MAX_LISTED = 20  # missing audio files listed in an error before "... and N more"

NUMBER = r"\d+(?:\.\d+)?"
HEADER = re.compile(rf"\[\s*(?P<start>{NUMBER})\s*-\s*(?P<end>{NUMBER})\s*\]\s+(?P<turn>\S+)\s+"
                    rf"(?P<label>\S+)\s+\[[^\]]*\]")
TURN_NAME = re.compile(r"(?P<session>Ses\d{2})[FM]_.+_(?P<gender>[FM])\d{3}")
CATEGORICAL = re.compile(r"C-(?P<evaluator>[^:\s]*):(?P<rest>.*)")
EVALUATOR = re.compile(r"[EFM]\d+")  # E<n> external evaluator, F<n>/M<n> the actor
ATTRIBUTE = re.compile(r"A-\w+:.*")


@dataclass
class Turn:
    """One EmoEvaluation block: a header line and its evaluators' categorical tags."""

    turn: str
    start: float
    end: float
    label: str  # the header's consensus label (neu, ang, ..., xxx)
    path: Path
    line: int
    evaluations: dict[str, list[str]] = field(default_factory=dict)  # "E2" -> ["Frustration", "Anger"]

    @property
    def session(self) -> str:
        return self.turn[:5]

    @property
    def speaker(self) -> str:
        return self.session + TURN_NAME.fullmatch(self.turn)["gender"]

    @property
    def dialog(self) -> str:
        return self.turn.rsplit("_", 1)[0]


@dataclass
class IemocapSummary:
    manifest: str
    utterances: int
    classes: list[str]
    sessions_found: list[str]
    per_speaker: dict[str, int]
    header_labels: dict[str, int]
    consensus_per_speaker: dict[str, int]  # header label in neu/ang/sad/hap/exc
    consensus_total: int
    consensus_check: str
    self_assessments: bool
    multi_tag: str
    multi_tag_evaluations: int  # counted evaluator lines with more than one tag
    audio: str
    ignored_files: list[str]


def build_iemocap_manifest(
    root: str | Path,
    out: str | Path,
    self_assessments: bool = False,
    multi_tag: str = "split",
    classes: Sequence[str] | None = None,
    audio: str = "dialog",
    expected_consensus: Mapping[str, int] | None = EXPECTED_CONSENSUS,
) -> IemocapSummary:
    """Write the manifest of the IEMOCAP copy in `root` to `out`: one row per turn.

    `expected_consensus` is checked only when all five sessions are present (None: never).
    """
    root, out = Path(root), Path(out)
    classes = tuple(classes) if classes is not None else DataConfig().classes
    if multi_tag not in MULTI_TAG_RULES:
        raise ConfigError(f"multi_tag must be one of {MULTI_TAG_RULES}, got {multi_tag!r}")
    if audio not in AUDIO_SOURCES:
        raise ConfigError(f"audio must be one of {AUDIO_SOURCES}, got {audio!r}")
    files, ignored = find_evaluation_files(root)

    turns, problems = [], []
    for path in files:
        file_turns, file_problems = _parse_evaluation_file(path)
        turns += file_turns
        problems += file_problems
    problems += _consistency_problems(turns, self_assessments)
    if problems:
        raise CorpusError(f"{root}: {len(problems)} problem(s) in the EmoEvaluation files{_listing(problems)}")

    sessions = sorted({int(p.parents[2].name.removeprefix("Session")) for p in files})
    consensus = Counter(t.speaker for t in turns if t.label in CONSENSUS_LABELS)
    check = _consensus_check(root, sessions, consensus, expected_consensus)

    wavs = [audio_file(t, audio) for t in turns]
    missing = sorted({str(w) for w in wavs if not w.is_file()})
    if missing:
        raise CorpusError(f"{root}: {len(missing)} {audio} audio file(s) do not exist"
                          f"{_listing(missing, MAX_LISTED)}")
    rows = [_manifest_row(turn, wav, audio, classes, self_assessments, multi_tag, out.parent)
            for turn, wav in zip(turns, wavs)]
    write_annotations(annotations_frame(turns, self_assessments), out)
    write_manifest(pd.DataFrame(rows), out)
    return IemocapSummary(
        manifest=str(out),
        utterances=len(rows),
        classes=list(classes),
        sessions_found=[f"Session{n}" for n in sessions],
        per_speaker=dict(sorted(Counter(t.speaker for t in turns).items())),
        header_labels=dict(sorted(Counter(t.label for t in turns).items())),
        consensus_per_speaker=dict(sorted(consensus.items())),
        consensus_total=sum(consensus.values()),
        consensus_check=check,
        self_assessments=self_assessments,
        multi_tag=multi_tag,
        multi_tag_evaluations=sum(len(tags) > 1 for t in turns for who, tags in t.evaluations.items()
                                  if _counted(who, self_assessments)),
        audio=audio,
        ignored_files=[str(p) for p in ignored],
    )


def turn_votes(turn: Turn, classes: Sequence[str], self_assessments: bool = False,
               multi_tag: str = "split") -> dict[str, float]:
    """Votes per target class plus ``other`` from the turn's categorical evaluations."""
    votes = dict.fromkeys([*classes, OTHER], Fraction(0))
    for evaluator, tags in turn.evaluations.items():
        if not _counted(evaluator, self_assessments):
            continue
        weight = Fraction(1, len(tags)) if multi_tag == "split" else Fraction(1)
        for tag in tags:
            emotion = TAG_EMOTIONS[tag.lower()]
            votes[emotion if emotion in classes else OTHER] += weight
    # Exact fractions until here, so e.g. three thirds sum to exactly one vote.
    return {name: float(value) for name, value in votes.items()}


def find_evaluation_files(root: str | Path) -> tuple[list[Path], list[Path]]:
    """``Ses*.txt`` files of every session present, and other ``.txt`` files there (ignored).

    Hidden copies such as macOS ``._Ses01F_impro01.txt`` do not start with ``Ses``.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: the IEMOCAP folder does not exist")
    files, ignored = [], []
    for number in SESSIONS:
        folder = root / f"Session{number}" / "dialog" / "EmoEvaluation"
        if folder.is_dir():
            for path in sorted(p for p in folder.glob("*.txt") if p.is_file()):
                (files if path.name.startswith("Ses") else ignored).append(path)
    if not files:
        raise CorpusError(f"{root}: no SessionN/dialog/EmoEvaluation/Ses*.txt files (N = 1..5); "
                          f"is this the IEMOCAP folder (IEMOCAP_full_release)?")
    return files, ignored


def parse_evaluation_file(path: str | Path) -> list[Turn]:
    """The turns of one EmoEvaluation file; every malformed line is reported at once."""
    turns, problems = _parse_evaluation_file(Path(path))
    if problems:
        raise CorpusError(f"{path}: {len(problems)} problem(s){_listing(problems)}")
    return turns


def _parse_evaluation_file(path: Path) -> tuple[list[Turn], list[str]]:
    turns, problems = [], []
    current: Turn | None = None
    skipping = False  # inside the block of a malformed header, already reported
    malformed: set[str] = set()  # turns with a reported bad C- line: not "without C- line" too
    for number, raw in enumerate(_read_text(path).split("\n"), start=1):
        line = raw.strip()
        where = f"{path}: line {number}"
        if not line or line.startswith("%"):
            continue
        if line.startswith("["):
            current, problem = _parse_header(line, path, number)
            skipping = problem is not None
            if skipping:
                problems.append(f"{where}: {problem}: {line!r}")
            else:
                turns.append(current)
        elif skipping:
            continue
        elif match := CATEGORICAL.fullmatch(line):
            problem = _add_evaluation(current, match["evaluator"], match["rest"])
            if problem:
                problems.append(f"{where}: {problem}: {line!r}")
                if current is not None:
                    malformed.add(current.turn)
        elif ATTRIBUTE.fullmatch(line):
            if current is None:
                problems.append(f"{where}: evaluator line before any turn header: {line!r}")
        else:
            problems.append(f"{where}: not a turn header, C- or A- evaluator line: {line!r}")
    for turn in turns:
        if not turn.evaluations and turn.turn not in malformed:
            problems.append(f"{path}: line {turn.line}: turn {turn.turn} has no categorical (C-...) line")
    return turns, problems


def _parse_header(line: str, path: Path, number: int) -> tuple[Turn | None, str | None]:
    match = HEADER.fullmatch(line)
    if match is None:
        return None, "not a turn header '[START - END] TURN EMOTION [V, A, D]'"
    name = match["turn"]
    if TURN_NAME.fullmatch(name) is None:
        return None, f"turn name {name!r} is not of the form Ses01F_<dialog>_M012"
    if name.rsplit("_", 1)[0] != path.stem:
        return None, f"turn {name} belongs to dialog {name.rsplit('_', 1)[0]}, not to this file's {path.stem}"
    if match["label"] not in HEADER_LABELS:
        return None, f"unknown emotion {match['label']!r} (known: {', '.join(HEADER_LABELS)})"
    start, end = float(match["start"]), float(match["end"])
    if end <= start:
        return None, f"end {end:g} is not after start {start:g}"
    return Turn(turn=name, start=start, end=end, label=match["label"], path=path, line=number), None


def _add_evaluation(turn: Turn | None, evaluator: str, rest: str) -> str | None:
    """Record one ``C-`` line on `turn`; the reason it is malformed, or None."""
    if turn is None:
        return "evaluator line before any turn header"
    if not EVALUATOR.fullmatch(evaluator):
        return f"unknown evaluator C-{evaluator} (expected C-E<n>, or C-F<n> / C-M<n> for self-assessments)"
    if evaluator in turn.evaluations:
        return f"evaluator C-{evaluator} appears twice in turn {turn.turn}"
    # Tags come before the free-text comment in parentheses, separated by ';'.
    tags = [t.strip() for t in rest.split("(", 1)[0].split(";")]
    tags = list(dict.fromkeys(t for t in tags if t))
    if not tags:
        return f"evaluator C-{evaluator} gives no categorical tag"
    unknown = [t for t in tags if t.lower() not in TAG_EMOTIONS]
    if unknown:
        known = ", ".join(t.capitalize() for t in TAG_EMOTIONS)
        return f"unknown tag(s) {unknown} (known: {known})"
    turn.evaluations[evaluator] = tags
    return None


def _consistency_problems(turns: list[Turn], self_assessments: bool) -> list[str]:
    problems, first = [], {}
    for turn in turns:
        where = f"{turn.path}: line {turn.line}"
        folder_session = f"Ses{int(turn.path.parents[2].name.removeprefix('Session')):02d}"
        if turn.session != folder_session:
            problems.append(f"{where}: turn {turn.turn} of {turn.session} is in the folder of {folder_session}")
        if turn.turn in first:
            problems.append(f"{where}: turn {turn.turn} also appears in {first[turn.turn]}")
        else:
            first[turn.turn] = where
        if turn.evaluations and not any(_counted(who, self_assessments) for who in turn.evaluations):
            problems.append(f"{where}: turn {turn.turn} has only self-assessments (C-F/C-M), no external "
                            f"evaluator (C-E...): no votes without self_assessments=True")
    return problems


def _consensus_check(root: Path, sessions: list[int], found: Counter,
                     expected: Mapping[str, int] | None) -> str:
    if expected is None:
        return "skipped: no expected counts given"
    if sessions != list(SESSIONS):
        return f"skipped: only session(s) {', '.join(map(str, sessions))} present"
    differ = [f"{s}: expected {expected.get(s, 0)}, found {found.get(s, 0)}"
              for s in sorted(set(expected) | set(found)) if expected.get(s, 0) != found.get(s, 0)]
    if differ:
        raise CorpusError(
            f"{root}: all five sessions are present, but the 4-class consensus counts (header label "
            f"{'/'.join(CONSENSUS_LABELS)}) differ from IEMOCAP's published ones; is the copy "
            f"incomplete or modified?{_listing(differ)}")
    return f"passed: {sum(found.values())} turns match the published per-speaker counts"


def audio_file(turn: Turn, audio: str = "dialog") -> Path:
    """The turn's dialog recording (cut with start/end) or its own per-turn file."""
    session_dir = turn.path.parents[2]
    if audio == "dialog":
        return session_dir / "dialog" / "wav" / f"{turn.dialog}.wav"
    return session_dir / "sentences" / "wav" / turn.dialog / f"{turn.turn}.wav"


def annotations_frame(turns: list[Turn], self_assessments: bool = False) -> pd.DataFrame:
    """Who gave which tag (`annotations.csv`), one row per tag, with the emotion names of
    `TAG_EMOTIONS` (excited is happiness). An evaluator id is read as one person within a
    session (``Ses01-E2``): the corpus numbers its evaluators per session and does not say that
    E2 is the same person in two sessions. The counted evaluators are the vote columns' own."""
    rows = [(turn.turn, f"{turn.session}-{evaluator}", emotion)
            for turn in turns for evaluator, tags in turn.evaluations.items() if _counted(evaluator, self_assessments)
            for emotion in dict.fromkeys(TAG_EMOTIONS[tag.lower()] for tag in tags)]  # "Happiness; Excited": once
    return pd.DataFrame(rows, columns=["utt_id", "annotator", "label"])


def _manifest_row(turn: Turn, wav: Path, audio: str, classes, self_assessments: bool,
                  multi_tag: str, manifest_dir: Path) -> dict:
    row = {"utt_id": turn.turn, "path": relative_path(wav, manifest_dir), "speaker": turn.speaker,
           "session": turn.session}
    if audio == "dialog":
        row.update(start=turn.start, end=turn.end, duration=turn.end - turn.start)
    else:
        row["duration"] = audio_duration(wav)
    votes = turn_votes(turn, classes, self_assessments, multi_tag)
    return {**row, **{VOTES_PREFIX + name: value for name, value in votes.items()}}


def _listing(items: list[str], limit: int | None = None) -> str:
    if limit is not None and len(items) > limit:
        items = items[:limit] + [f"... and {len(items) - limit} more"]
    return "".join(f"\n  {item}" for item in items)


def _counted(evaluator: str, self_assessments: bool) -> bool:
    return evaluator.startswith("E") or self_assessments


def _read_text(path: Path) -> str:
    return read_legacy_text(path, "EmoEvaluation file")[0]
