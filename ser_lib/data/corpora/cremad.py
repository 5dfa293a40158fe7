"""CREMA-D (Cao et al., 2014) as a manifest with crowd votes per clip.

A CREMA-D checkout (github.com/CheyneyComputerScience/CREMA-D, the audio fetched with Git LFS)
holds what the builder reads:

- ``processedResults/tabulatedVotes.csv``: per clip and presentation, how many raters chose
  each of six emotions (columns ``A D F H N S``), their sum ``numResponses`` and the majority
  ``emoVote`` (ties joined by ":");
- ``processedResults/summaryTable.csv``: the majority per clip for each presentation
  (``VoiceVote``, ``FaceVote``, ``MultiModalVote``), used to check which rows are which;
- ``VideoDemographics.csv``: age and sex per actor;
- ``AudioWAV/<clip>.wav``: 7,442 clips ``AAAA_SSS_EEE_LL`` (actor, sentence, intended emotion,
  intended level LO/MD/HI/XX), 16 kHz mono.

Presentations. Raters judged every clip three times over: voice only, face only, and
audio-visual, so tabulatedVotes.csv has 3 x 7,442 rows. Nothing but the unnamed first column
tells them apart: its first digit is the presentation (1 voice, 2 face, 3 audio-visual) and the
rest the clip's stimulus number (``100001`` = voice, clip 1). This reading is checked, never
assumed: every clip must appear once per presentation with one stimulus number, and the chosen
presentation's ``emoVote`` must equal summaryTable.csv's column for it on every clip; rows of
another presentation would disagree on about half the clips. ``ratings="voice"`` (default) is
what a speech model hears; ``"audiovisual"`` and ``"face"`` are the other readings.

Votes: each rater's choice is one vote. Anger, happiness, sadness and neutral go to their
``votes_<class>`` columns with the default classes; disgust and fear (any emotion outside
`classes`) go to ``votes_other``, so a clip whose majority is disgust is dropped by the
partition. Each row also carries the actor's ``sex`` and ``age``, the ``intended_emotion`` and
its ``intensity``; the speaker is the actor id. CREMA-D has no sessions.

Every clip in the votes needs its WAV and every WAV its votes; nothing is skipped. A WAV that
is a Git LFS pointer (a checkout without ``git lfs pull``) is reported as such.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ...config import OTHER, DataConfig
from ...errors import AudioError, ConfigError, CorpusError
from ..audio import audio_duration
from ..manifest import VOTES_PREFIX, write_manifest
from .emodb import relative_path

VOTES_CSV = "processedResults/tabulatedVotes.csv"
SUMMARY_CSV = "processedResults/summaryTable.csv"
DEMOGRAPHICS_CSV = "VideoDemographics.csv"
WAV_DIR = "AudioWAV"
# The first digit of tabulatedVotes.csv's unnamed first column, and summaryTable.csv's column.
PRESENTATIONS = {"voice": 1, "face": 2, "audiovisual": 3}
SUMMARY_COLUMNS = {"voice": "VoiceVote", "face": "FaceVote", "audiovisual": "MultiModalVote"}
STIMULI_PER_PRESENTATION = 100000
EXPECTED_CLIPS = 7442  # the CREMA-D paper and README
VOTE_LETTERS = {"A": "anger", "D": "disgust", "F": "fear", "H": "happiness", "N": "neutral", "S": "sadness"}
INTENDED = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}
SEXES = {"Female": "female", "Male": "male"}
CLIP_NAME = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>LO|MD|HI|XX)")
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
MAX_LISTED = 20  # problems listed in an error before "... and N more"


@dataclass(frozen=True)
class ClipVotes:
    """One row of tabulatedVotes.csv."""

    clip: str
    presentation: int
    stimulus: int
    counts: dict[str, int]  # vote letter -> raters
    line: int


@dataclass
class CremadSummary:
    manifest: str
    ratings: str
    utterances: int
    classes: list[str]
    speakers: int
    speakers_per_sex: dict[str, int]
    per_intended_emotion: dict[str, int]
    per_intensity: dict[str, int]
    votes_per_clip: dict[str, int]  # min, median, max raters
    votes_other_share: float  # of all votes: emotions outside the classes
    presentation_check: str


def build_cremad_manifest(root: str | Path, out: str | Path, ratings: str = "voice",
                          classes: Sequence[str] | None = None,
                          expected_clips: int | None = EXPECTED_CLIPS) -> CremadSummary:
    """Write the manifest of the CREMA-D checkout in `root` to `out`: one row per clip, with the
    votes of the `ratings` presentation. `expected_clips` (None: not checked) guards against a
    truncated votes table."""
    root, out = Path(root), Path(out)
    classes = tuple(classes) if classes is not None else DataConfig().classes
    if ratings not in PRESENTATIONS:
        raise ConfigError(f"ratings must be one of {tuple(PRESENTATIONS)}, got {ratings!r}")
    if not root.is_dir():
        raise CorpusError(f"{root}: the CREMA-D folder does not exist")
    votes = read_tabulated_votes(root / VOTES_CSV)[ratings]
    check = check_presentation(votes, root / SUMMARY_CSV, ratings)
    if expected_clips is not None and len(votes) != expected_clips:
        raise CorpusError(f"{root / VOTES_CSV}: {len(votes)} clips per presentation, CREMA-D has {expected_clips}; "
                          "is the copy incomplete or modified?")
    actors = read_demographics(root / DEMOGRAPHICS_CSV)
    _check_actors(votes, actors, root / DEMOGRAPHICS_CSV)
    wavs = clip_wavs(root / WAV_DIR, list(votes))

    rows = [_manifest_row(v, wavs[clip], actors, classes, out.parent) for clip, v in votes.items()]
    write_manifest(pd.DataFrame(rows), out)
    return _summary(out, ratings, classes, rows, actors, check)


def read_tabulated_votes(path: Path) -> dict[str, dict[str, ClipVotes]]:
    """tabulatedVotes.csv as {presentation: {clip: votes}}; every bad row is reported at once.

    Besides each row's own checks, every clip must appear exactly once in each presentation,
    with the same stimulus number in all three.
    """
    header, rows = _read_csv(path, "votes table")
    needed = ["", *VOTE_LETTERS, "fileName", "numResponses", "emoVote"]
    missing = [c or "(the unnamed first column)" for c in needed if c not in header]
    if missing or header[0] != "":
        raise CorpusError(f"{path}: line 1: expected an unnamed first column and the columns "
                          f"{needed[1:]}; missing {missing or [header[0]]}")
    by_presentation: dict[int, dict[str, ClipVotes]] = {n: {} for n in PRESENTATIONS.values()}
    problems = []
    for line, fields in rows:
        row = dict(zip(header, fields))
        vote, problem = _parse_votes_row(row, line, len(fields) == len(header))
        if problem is None and vote.clip in by_presentation[vote.presentation]:
            first = by_presentation[vote.presentation][vote.clip].line
            problem = f"clip {vote.clip} appears twice in presentation {vote.presentation} (first on line {first})"
        if problem is not None:
            problems.append(f"line {line}: {problem}")
        else:
            by_presentation[vote.presentation][vote.clip] = vote
    problems += _presentation_problems(by_presentation)
    if problems:
        raise CorpusError(f"{path}: {len(problems)} problem(s){_listing(problems)}")
    return {name: by_presentation[number] for name, number in PRESENTATIONS.items()}


def check_presentation(votes: dict[str, ClipVotes], summary_path: Path, ratings: str) -> str:
    """The chosen rows' majorities must equal summaryTable.csv's column of `ratings` for every clip,
    so rows of another presentation can never pass for them."""
    header, rows = _read_csv(summary_path, "summary table")
    column = SUMMARY_COLUMNS[ratings]
    if "FileName" not in header or column not in header:
        raise CorpusError(f"{summary_path}: line 1: no FileName and {column} columns")
    published = {}
    for line, fields in rows:
        row = dict(zip(header, fields))
        published[row.get("FileName", "")] = (line, row.get(column, ""))
    problems = [f"clip {clip} is not in {summary_path.name}" for clip in votes if clip not in published]
    problems += [f"line {line}: clip {clip} has no {ratings} votes" for clip, (line, _) in published.items()
                 if clip not in votes]
    differ = [f"line {line}: {clip}: {column} {value!r}, the votes' majority {majority(votes[clip].counts)!r}"
              for clip, (line, value) in published.items() if clip in votes and value != majority(votes[clip].counts)]
    if differ:
        digit = PRESENTATIONS[ratings]
        problems.insert(0, f"the {ratings} votes (rows whose first column starts with {digit}) disagree with {column} "
                           f"on {len(differ)} of {len(votes)} clips: are the presentations mixed up?")
        problems += differ
    if problems:
        raise CorpusError(f"{summary_path}: {len(problems)} problem(s){_listing(problems)}")
    return f"passed: the {ratings} votes' majority equals {SUMMARY_CSV}'s {column} for all {len(votes)} clips"


def majority(counts: dict[str, int]) -> str:
    """The most chosen emotion letter(s), ties joined by ":" in column order, as ``emoVote`` writes them."""
    top = max(counts.values())
    return ":".join(letter for letter in VOTE_LETTERS if counts[letter] == top)


def read_demographics(path: Path) -> dict[str, tuple[str, int]]:
    """VideoDemographics.csv as {actor id: (sex, age)}, sex "female" or "male"."""
    header, rows = _read_csv(path, "demographics table")
    if not {"ActorID", "Age", "Sex"} <= set(header):
        raise CorpusError(f"{path}: line 1: expected the columns ActorID, Age and Sex, got {header}")
    actors, problems = {}, []
    for line, fields in rows:
        row = dict(zip(header, fields))
        actor, age, sex = row.get("ActorID", ""), row.get("Age", ""), row.get("Sex", "")
        if not re.fullmatch(r"\d{4}", actor):
            problems.append(f"line {line}: ActorID {actor!r} is not a 4-digit actor id")
        elif actor in actors:
            problems.append(f"line {line}: actor {actor} is listed twice")
        elif sex not in SEXES or not age.isdigit():
            problems.append(f"line {line}: actor {actor}: Sex {sex!r} (expected {' or '.join(SEXES)}) "
                            f"or Age {age!r} (expected years) is not valid")
        else:
            actors[actor] = (SEXES[sex], int(age))
    if problems:
        raise CorpusError(f"{path}: {len(problems)} problem(s){_listing(problems)}")
    return actors


def clip_wavs(wav_dir: Path, clips: list[str]) -> dict[str, Path]:
    """``AudioWAV/<clip>.wav`` of every clip, checked to be audio.

    Git LFS pointers come first (a checkout without ``git lfs pull`` has nothing else), then
    clips without a WAV, then WAVs without votes: each is an error, never a skipped sample.
    """
    if not wav_dir.is_dir():
        raise CorpusError(f"{wav_dir}: the CREMA-D audio folder does not exist (AudioWAV/ of the CREMA-D checkout)")
    wavs = {p.stem: p for p in sorted(wav_dir.iterdir()) if p.suffix == ".wav" and p.is_file()}
    stubs = [p for p in wavs.values() if is_lfs_pointer(p)]
    if stubs:
        raise AudioError(f"{wav_dir}: {len(stubs)} of {len(wavs)} WAV files are Git LFS pointer stubs, not audio "
                         f"(e.g. {stubs[0].name}); fetch the audio with `git lfs install && git lfs pull` "
                         f"in the CREMA-D checkout")
    missing = [f"{clip}.wav" for clip in clips if clip not in wavs]
    if missing:
        raise CorpusError(f"{wav_dir}: {len(missing)} clip(s) of the votes have no WAV file{_listing(missing)}")
    known = set(clips)
    extra = [p.name for clip, p in wavs.items() if clip not in known]
    if extra:
        raise CorpusError(f"{wav_dir}: {len(extra)} WAV file(s) have no votes in {VOTES_CSV}{_listing(extra)}")
    return {clip: wavs[clip] for clip in clips}


def is_lfs_pointer(path: Path) -> bool:
    """A Git LFS pointer file: a small text file that names the object instead of holding it."""
    if path.stat().st_size > 1024:
        return False
    with open(path, "rb") as handle:
        return handle.read(len(LFS_POINTER)) == LFS_POINTER


def clip_votes(counts: dict[str, int], classes: Sequence[str]) -> dict[str, int]:
    """``votes_<class>`` and ``votes_other`` from the six emotion counts."""
    votes = dict.fromkeys([*classes, OTHER], 0)
    for letter, n in counts.items():
        emotion = VOTE_LETTERS[letter]
        votes[emotion if emotion in classes else OTHER] += n
    return {VOTES_PREFIX + name: n for name, n in votes.items()}


def _parse_votes_row(row: dict[str, str], line: int, complete: bool) -> tuple[ClipVotes | None, str | None]:
    if not complete:
        return None, "wrong number of fields"
    number, clip = row[""], row["fileName"]
    if not number.isdigit() or int(number) // STIMULI_PER_PRESENTATION not in PRESENTATIONS.values():
        return None, (f"first column {number!r} is not a presentation digit (1 voice, 2 face, 3 audio-visual) "
                      "followed by a 5-digit stimulus number")
    if CLIP_NAME.fullmatch(clip) is None or CLIP_NAME.fullmatch(clip)["emotion"] not in INTENDED:
        return None, f"fileName {clip!r} is not a CREMA-D clip name AAAA_SSS_EEE_LL"
    raw = {letter: row[letter] for letter in VOTE_LETTERS}
    if not all(v.isdigit() for v in raw.values()) or not row["numResponses"].isdigit():
        return None, f"{clip}: vote counts {raw} and numResponses {row['numResponses']!r} must be whole numbers"
    counts = {letter: int(v) for letter, v in raw.items()}
    if sum(counts.values()) != int(row["numResponses"]) or not sum(counts.values()):
        return None, f"{clip}: the votes {counts} do not add up to numResponses {row['numResponses']} (or are none)"
    if row["emoVote"] != majority(counts):
        return None, f"{clip}: emoVote {row['emoVote']!r} is not the majority of the votes {counts}"
    presentation, stimulus = divmod(int(number), STIMULI_PER_PRESENTATION)
    return ClipVotes(clip, presentation, stimulus, counts, line), None


def _presentation_problems(by_presentation: dict[int, dict[str, ClipVotes]]) -> list[str]:
    """Every clip in every presentation, with one stimulus number."""
    problems = []
    every_clip = sorted(set().union(*by_presentation.values()))
    for clip in every_clip:
        found = {n: rows[clip] for n, rows in by_presentation.items() if clip in rows}
        absent = [name for name, n in PRESENTATIONS.items() if n not in found]
        if absent:
            problems.append(f"clip {clip} has no rows for the presentation(s) {absent}")
        if len({v.stimulus for v in found.values()}) > 1:
            numbers = {v.line: v.stimulus for v in found.values()}
            problems.append(f"clip {clip} has different stimulus numbers across presentations (line: number) {numbers}")
    return problems


def _check_actors(votes: dict[str, ClipVotes], actors: dict[str, tuple[str, int]], path: Path) -> None:
    unknown = sorted({CLIP_NAME.fullmatch(c)["actor"] for c in votes} - set(actors))
    if unknown:
        raise CorpusError(f"{path}: actor(s) {unknown} have clips but no demographics row")


def _manifest_row(vote: ClipVotes, wav: Path, actors: dict[str, tuple[str, int]], classes: Sequence[str],
                  manifest_dir: Path) -> dict:
    name = CLIP_NAME.fullmatch(vote.clip)
    sex, age = actors[name["actor"]]
    return {
        "utt_id": vote.clip,
        "path": relative_path(wav, manifest_dir),
        "speaker": name["actor"],
        "duration": audio_duration(wav),
        "sex": sex,
        "age": age,
        "intended_emotion": INTENDED[name["emotion"]],
        "intensity": name["level"],
        **clip_votes(vote.counts, classes),
    }


def _summary(out: Path, ratings: str, classes, rows: list[dict], actors, check: str) -> CremadSummary:
    speakers = sorted({row["speaker"] for row in rows})
    totals = sorted(sum(row[VOTES_PREFIX + c] for c in [*classes, OTHER]) for row in rows)
    return CremadSummary(
        manifest=str(out),
        ratings=ratings,
        utterances=len(rows),
        classes=list(classes),
        speakers=len(speakers),
        speakers_per_sex=dict(sorted(Counter(actors[s][0] for s in speakers).items())),
        per_intended_emotion=dict(sorted(Counter(row["intended_emotion"] for row in rows).items())),
        per_intensity=dict(sorted(Counter(row["intensity"] for row in rows).items())),
        votes_per_clip={"min": totals[0], "median": totals[len(totals) // 2], "max": totals[-1]},
        votes_other_share=round(sum(row[VOTES_PREFIX + OTHER] for row in rows) / sum(totals), 4),
        presentation_check=check,
    )


def _read_csv(path: Path, what: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a CSV file; CREMA-D's quoted fields are unquoted."""
    if not path.is_file():
        raise CorpusError(f"{path}: the {what} is missing (expected in a CREMA-D checkout)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read the {what}: {exc}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise CorpusError(f"{path}: the {what} is empty")
    rows = [(reader.line_num, fields) for fields in reader if fields]
    return header, rows


def _listing(items: list[str]) -> str:
    if len(items) > MAX_LISTED:
        items = items[:MAX_LISTED] + [f"... and {len(items) - MAX_LISTED} more"]
    return "".join(f"\n  {item}" for item in items)
