"""The embedded synthetic corpus: IEMOCAP-shaped speech whose true emotion mix is known.

Layout as in IEMOCAP: 5 sessions x 2 speakers (one female, one male voice), speakers
``Ses01F`` ... ``Ses05M``, so leave-one-speaker-out has 10 folds. Each utterance has

- a true emotion distribution over the target classes (``true_<class>``, summing to 1):
  either peaked on one class or a blend of three;
- speech rendered by eSpeak NG whose prosody blends per-emotion targets weighted by that
  distribution (`EMOTION_PROSODY`: pitch level and range, rate, loudness, spectral tilt,
  breathiness, harshness) on top of the speaker's own baseline;
- 3-5 votes (``votes_<class>``, ``votes_other``) from simulated annotators, each with a
  class bias and a temperature, drawn from a per-session pool as in IEMOCAP; who gave which vote
  is written to ``annotations.csv`` beside the manifest (`ser_lib.data.annotations`).

About 40% of the utterances come out ambiguous under the clear/ambiguous rule of
`ser_lib.labels` (no class with more than half of the votes), for every size and seed.

Generation has two stages. `plan_corpus` draws everything but the audio (cheap, in this
process); `synthesize_corpus` renders the audio, optionally in worker processes, and
writes the manifest last. Every random draw comes from a generator seeded by
``(seed, stream, index)`` and eSpeak's output is a pure function of its input (see
`espeak`), so a seed gives byte-identical files whatever the number of workers.
"""

from __future__ import annotations

import io
import multiprocessing
import re
import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal
import soundfile
import soxr
from tqdm.auto import tqdm

from ...config import OTHER, DataConfig, SynthConfig
from ...errors import ConfigError
from ...files import atomic_write_bytes
from ..annotations import write_annotations
from ..manifest import write_manifest
from . import espeak

# ---------------------------------------------------------------------------------------
# The corpus' design: these constants define what the corpus is; they are not settings.

UTTERANCES_PER_SPEAKER = {"small": 25, "medium": 100, "large": 500}
SESSIONS = 5
# eSpeak voice variants per session: (female, male).
VOICES = (("f1", "m1"), ("f2", "m2"), ("f3", "m3"), ("f4", "m4"), ("f5", "m7"))


@dataclass(frozen=True)
class Prosody:
    """An emotion's offsets from a speaker's baseline and its voice-quality amounts."""

    pitch: float  # eSpeak pitch, 0-100 scale
    pitch_range: float  # eSpeak pitch range, 0-100 scale
    rate: float  # factor on the speaker's words per minute
    word_gap: float  # extra pause between words, 10 ms units
    gain_db: float  # loudness
    tilt: float  # spectral tilt, -1 (dark) .. 1 (bright)
    breath: float  # aspiration noise, 0 .. 1
    drive: float  # soft saturation (harshness), 0 .. 1


# The usual acoustic correlates: anger loud, fast, wide range and harsh; happiness high,
# wide and fast; sadness low, slow, narrow, quiet, dark and breathy; neutral in between.
EMOTION_PROSODY = {
    "anger": Prosody(pitch=8, pitch_range=28, rate=1.18, word_gap=0, gain_db=6.0, tilt=1.0, breath=0.0, drive=1.0),
    "happiness": Prosody(pitch=20, pitch_range=32, rate=1.12, word_gap=0, gain_db=3.0, tilt=0.4, breath=0.1,
                         drive=0.15),
    "sadness": Prosody(pitch=-14, pitch_range=-30, rate=0.74, word_gap=4, gain_db=-7.0, tilt=-1.0, breath=1.0,
                       drive=0.0),
    "neutral": Prosody(pitch=0, pitch_range=0, rate=1.0, word_gap=0, gain_db=0.0, tilt=0.0, breath=0.15, drive=0.0),
}

# Per speaker: the share of utterances blending three emotions (most of them come out
# ambiguous; tuned so that ~40% of the corpus does), and how the others are dominated
# (IEMOCAP-like imbalance), with at least MIN_DOMINANT per class so every speaker has
# clear samples of every class.
BLEND_SHARE = 0.46
DOMINANT_SHARE = {"anger": 0.22, "happiness": 0.28, "sadness": 0.18, "neutral": 0.32}
MIN_DOMINANT = 3
# Duration tiers, total seconds with pauses: (share, target low, target high) and the
# accepted range, so padding (< 1.5 s) and segmentation (> 7 s) are exercised.
DURATION_TIERS = {"short": (0.1, 0.9, 1.35), "medium": (0.8, 1.8, 6.6), "long": (0.1, 7.4, 9.6)}
TIER_BOUNDS = {"short": (0.0, 1.45), "medium": (1.55, 6.95), "long": (7.05, 10.0)}

ANNOTATORS_PER_SESSION = 6
ANNOTATORS_PER_UTTERANCE = ((3, 0.4), (4, 0.4), (5, 0.2))  # (count, probability)
# Share of blends that also carry an emotion outside the target classes (frustration,
# surprise, ...), which annotators vote as "other".
OUTSIDE_EMOTION_SHARE = 0.04

SPEAKER_WPM = 170  # mean speaking rate, words per minute
LEVEL_DBFS = -24.0  # active-speech RMS of a neutral utterance
NOISE_FLOOR_DBFS = -60.0  # white noise everywhere: no digital silence reaches the features
# Starting a worker process costs about as much as rendering this many utterances.
UTTERANCES_PER_WORKER = 200

# Random streams: one generator per (seed, stream, item).
_PLAN, _SPEAKER, _QUOTA, _SESSION, _RENDER, _CONFUSION = range(6)
_WAV_NAME = re.compile(r"Ses\d\d[FM]_u\d{4}\.wav")

# ---------------------------------------------------------------------------------------
# Texts: random English sentences from a small grammar; a text is a prefix of a long run
# of clauses, so its length can be adjusted word by word.

@dataclass(frozen=True)
class Vocabulary:
    """The words of the sentence grammar. The pretraining speech (`synth_unlabelled`) has its
    own, with no content word in common, so its texts are disjoint from this corpus'."""

    subjects: tuple[str, ...]
    verbs: tuple[str, ...]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    places: tuple[str, ...]
    joins: tuple[str, ...] = ("and", "but", "so", "then", "because")
    openers: tuple[str, ...] = ("well", "oh", "look", "honestly", "okay", "listen", "really")


EVALUATION_VOCABULARY = Vocabulary(
    subjects=("I", "you", "we", "they", "she", "he", "my brother", "the teacher", "our neighbour",
              "the driver", "my mother", "the doctor", "Anna", "Peter", "the children", "everyone"),
    verbs=("found", "brought", "painted", "sold", "opened", "moved", "cleaned", "fixed", "carried",
           "lost", "watched", "borrowed", "ordered", "closed", "checked", "forgot"),
    adjectives=("old", "small", "green", "heavy", "new", "broken", "wooden", "quiet", "yellow",
                "strange", "cheap", "long", "empty", "warm", "second", "famous"),
    nouns=("table", "letter", "window", "bicycle", "garden", "ticket", "kitchen", "camera", "boat",
           "picture", "piano", "basket", "office", "bottle", "car", "map"),
    places=("at the station", "in the morning", "after dinner", "near the river", "on Monday",
            "before the meeting", "in the city", "at home", "last summer", "by the door",
            "yesterday", "at the market", "again", "this week"),
)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _clause(rng: np.random.Generator, vocabulary: Vocabulary) -> list[str]:
    words = [*_pick(rng, vocabulary.subjects).split(), _pick(rng, vocabulary.verbs), "the"]
    if rng.random() < 0.6:
        words.append(_pick(rng, vocabulary.adjectives))
    words.append(_pick(rng, vocabulary.nouns))
    if rng.random() < 0.7:
        words += _pick(rng, vocabulary.places).split()
    return words


def word_sequence(rng: np.random.Generator, vocabulary: Vocabulary = EVALUATION_VOCABULARY,
                  length: int = 60) -> tuple[str, ...]:
    words = [_pick(rng, vocabulary.openers) + ","] if rng.random() < 0.4 else []
    words += _clause(rng, vocabulary)
    while len(words) < length:
        words[-1] += ","
        words += [_pick(rng, vocabulary.joins), *_clause(rng, vocabulary)]
    words[0] = words[0][0].upper() + words[0][1:]
    return tuple(words)


def _text(words: tuple[str, ...], n_words: int, ending: str) -> str:
    return " ".join(words[:n_words]).rstrip(",") + ending


# ---------------------------------------------------------------------------------------
# Plan: everything but the audio.


@dataclass(frozen=True)
class Annotator:
    bias: np.ndarray  # [K] multiplicative class preference
    temperature: float  # >= 1: flattens what the annotator perceives, i.e. noisier votes
    other_rate: float  # chance of perceiving an emotion outside the target classes
    # (class heard, class it is heard as) and the share moved (synth.annotator_confusion); none by default.
    confusion: tuple[int, int] = (0, 0)
    confusion_share: float = 0.0


@dataclass
class Utterance:
    index: int
    utt_id: str
    path: str  # relative to the corpus folder
    speaker: str
    session: str
    voice: str  # eSpeak voice
    true: np.ndarray  # [K] true distribution over the target classes
    votes: np.ndarray  # [K + 1] votes for the target classes, then other
    words: tuple[str, ...]  # the text is a prefix of these
    n_words: int  # first guess; rendering adjusts it until the duration is in the tier
    ending: str  # sentence punctuation: "!" more likely the more aroused
    tier: str
    target_s: float
    pad_s: tuple[float, float]  # leading and trailing pause
    rate: int  # eSpeak parameters
    pitch: int
    pitch_range: int
    word_gap: int
    gain_db: float  # post-processing
    tilt: float
    breath: float
    drive: float
    seed: int  # for eSpeak's noise and the rendering noise
    # Who voted what: (annotator's index in the session's pool, class index; K = other), one per vote.
    annotations: tuple[tuple[int, int], ...] = ()
    outside: float = 0.0  # share of an emotion outside the target classes (raises "other" votes)


def plan_corpus(
    seed: int = SynthConfig.seed,
    size: str = SynthConfig.size,
    per_speaker: int | None = None,
    annotator_temperature: float = SynthConfig.annotator_temperature,
    annotator_confusion: float = SynthConfig.annotator_confusion,
) -> list[Utterance]:
    """Draw labels, texts and prosody of every utterance, without audio.

    `per_speaker` overrides the size's number of utterances per speaker (quick looks, tests);
    `annotator_temperature` is the upper end of the annotators' temperatures and
    `annotator_confusion` the share each annotator moves from one class to another (`SynthConfig`).
    """
    if not annotator_temperature >= 1.0:
        raise ConfigError(f"synth.annotator_temperature must be >= 1, got {annotator_temperature}")
    classes = _classes()
    if per_speaker is None:
        if size not in UTTERANCES_PER_SPEAKER:
            raise ConfigError(f"synthetic corpus size must be one of {list(UTTERANCES_PER_SPEAKER)}, got {size!r}")
        per_speaker = UTTERANCES_PER_SPEAKER[size]
    if per_speaker < 1:
        raise ConfigError(f"utterances per speaker must be at least 1, got {per_speaker}")
    utterances = []
    for session_ix in range(SESSIONS):
        session = f"Ses{session_ix + 1:02d}"
        pool = _session_pool(seed, session_ix, len(classes), annotator_temperature, annotator_confusion)
        for gender_ix, gender in enumerate("FM"):
            speaker_ix = 2 * session_ix + gender_ix
            speaker = session + gender
            voice = f"en+{VOICES[session_ix][gender_ix]}"
            baseline = _speaker_baseline(seed, speaker_ix)
            kinds, tiers = _speaker_quotas(seed, speaker_ix, per_speaker, classes)
            for j in range(per_speaker):
                utt_id = f"{speaker}_u{j:04d}"
                utterances.append(_plan_utterance(
                    _rng(seed, _PLAN, speaker_ix * per_speaker + j), speaker_ix * per_speaker + j, utt_id,
                    f"wav/{session}/{utt_id}.wav", speaker, session, voice, baseline, kinds[j], tiers[j], pool,
                    classes,
                ))
    return utterances


def manifest_frame(utterances: list[Utterance], durations: dict[int, float] | None = None) -> pd.DataFrame:
    """The manifest rows of planned utterances (``duration`` only when `durations` is given,
    keyed by utterance index)."""
    classes = _classes()
    columns = {
        "utt_id": [u.utt_id for u in utterances],
        "path": [u.path for u in utterances],
        "speaker": [u.speaker for u in utterances],
        "session": [u.session for u in utterances],
    }
    if durations is not None:
        columns["duration"] = [durations[u.index] for u in utterances]
    columns |= {f"votes_{c}": [int(u.votes[k]) for u in utterances] for k, c in enumerate(classes)}
    columns["votes_other"] = [int(u.votes[-1]) for u in utterances]
    columns |= {f"true_{c}": [float(u.true[k]) for u in utterances] for k, c in enumerate(classes)}
    return pd.DataFrame(columns)


def annotations_frame(utterances: list[Utterance]) -> pd.DataFrame:
    """Who voted what (`annotations.csv`): annotators are named by session and their place in
    the session's pool (``Ses01-A3``), the same person for every utterance of that session."""
    labels = [*_classes(), OTHER]
    rows = [(u.utt_id, f"{u.session}-A{a + 1}", labels[k]) for u in utterances for a, k in u.annotations]
    return pd.DataFrame(rows, columns=["utt_id", "annotator", "label"])


def annotator_confusions(
    seed: int = SynthConfig.seed,
    size: str = SynthConfig.size,
    per_speaker: int | None = None,
    annotator_temperature: float = SynthConfig.annotator_temperature,
    annotator_confusion: float = SynthConfig.annotator_confusion,
) -> dict[str, pd.DataFrame]:
    """Each annotator's true confusion matrix in the corpus `plan_corpus` plans with these arguments:
    P(label given | true class), keyed by annotator id as in `annotations_frame` (``Ses01-A3``).

    What Dawid-Skene estimates (crowd-kit's ``errors_``, transposed), known here exactly. Rows (index
    ``true``): an utterance's true class, the argmax of its true distribution; columns (``label``): the
    label given, over the target classes only and renormalised, as label aggregation leaves ``other``
    out (`ser_lib.method.aggregation`). Each row sums to 1; a class that is never the argmax in the
    annotator's session has a row of NaN. A matrix's ``attrs`` name the annotator's parameters:
    ``temperature`` and ``confused``, its (heard, heard as) pair of classes (None without confusion).

    Analytical, not counted: the annotator's vote on an utterance is drawn from what it perceives
    (`_perception`, from its temperature, bias, confusion pair and other-rate: the rule the votes are
    drawn with), and panels are drawn regardless of the utterance, so the row of class k is that
    perception averaged over all the session's utterances whose true argmax is k. The matrix counted
    from the planned votes scatters around it (a `small` corpus gives an annotator ~35 labels).
    """
    classes = _classes()
    utterances = plan_corpus(seed, size, per_speaker, annotator_temperature, annotator_confusion)
    matrices = {}
    for session_ix in range(SESSIONS):
        session = f"Ses{session_ix + 1:02d}"
        in_session = [u for u in utterances if u.session == session]
        truth = np.array([int(np.argmax(u.true)) for u in in_session])
        pool = _session_pool(seed, session_ix, len(classes), annotator_temperature, annotator_confusion)
        for a, annotator in enumerate(pool):
            # Target-class part of each perception: rows sum to the chance of a target label.
            heard = np.array([_perception(annotator, u.true, u.outside)[:-1] for u in in_session])
            counts = np.array([heard[truth == k].sum(axis=0) for k in range(len(classes))])
            with np.errstate(invalid="ignore"):  # a class absent from the session: NaN row
                matrix = counts / counts.sum(axis=1, keepdims=True)
            frame = pd.DataFrame(matrix, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="label"))
            frame.attrs = {"temperature": annotator.temperature,
                           "confused": tuple(classes[k] for k in annotator.confusion)
                           if annotator.confusion_share else None}
            matrices[f"{session}-A{a + 1}"] = frame
    return matrices


def _classes() -> tuple[str, ...]:
    classes = tuple(DataConfig().classes)
    missing = [c for c in classes if c not in EMOTION_PROSODY]
    if missing:
        raise ConfigError(f"the synthetic corpus renders only {list(EMOTION_PROSODY)}; no prosody for {missing}")
    return classes


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def _annotator_pool(seed: int, session_ix: int, num_classes: int, max_temperature: float) -> list[Annotator]:
    rng = _rng(seed, _SESSION, session_ix)
    return [
        Annotator(
            bias=np.exp(rng.normal(0.0, 0.15, num_classes)),
            temperature=float(rng.uniform(1.0, max_temperature)),
            other_rate=float(rng.uniform(0.01, 0.04)),
        )
        for _ in range(ANNOTATORS_PER_SESSION)
    ]


def _session_pool(seed: int, session_ix: int, num_classes: int, max_temperature: float,
                  confusion: float) -> list[Annotator]:
    return _confused(_annotator_pool(seed, session_ix, num_classes, max_temperature), seed, session_ix, confusion)


def _confused(pool: list[Annotator], seed: int, session_ix: int, share: float) -> list[Annotator]:
    """The pool with a confusion per annotator: a (heard, heard as) pair of distinct classes from
    a random stream of its own, so that `share` = 0 draws nothing and changes nothing."""
    if share == 0.0:
        return pool
    rng = _rng(seed, _CONFUSION, session_ix)
    pairs = [tuple(int(c) for c in rng.choice(len(a.bias), size=2, replace=False)) for a in pool]
    return [dataclasses.replace(a, confusion=pair, confusion_share=share) for a, pair in zip(pool, pairs)]


def _speaker_baseline(seed: int, speaker_ix: int) -> dict[str, float]:
    rng = _rng(seed, _SPEAKER, speaker_ix)
    return {
        "pitch": rng.uniform(42, 58),
        "pitch_range": rng.uniform(44, 58),
        "rate": SPEAKER_WPM * rng.uniform(0.9, 1.1),
        "gain_db": rng.uniform(-2.0, 2.0),
        "tilt": rng.uniform(-0.2, 0.2),
    }


def _speaker_quotas(seed: int, speaker_ix: int, n: int, classes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Per utterance of a speaker, shuffled: its kind (a dominant class or "blend") and its
    duration tier. Quotas rather than independent draws keep every speaker close to the
    design, even in the small corpus."""
    rng = _rng(seed, _QUOTA, speaker_ix)
    # Stochastic rounding: 12.5 blends of 25 gives 12 or 13 with equal chance, not always 13.
    n_blend = int(np.floor(n * BLEND_SHARE) + (rng.random() < n * BLEND_SHARE % 1))
    dominant = _apportion(n - n_blend, np.array([DOMINANT_SHARE[c] for c in classes]))
    while dominant.min() < min(MIN_DOMINANT, (n - n_blend) // len(classes)):
        dominant[np.argmax(dominant)] -= 1
        dominant[np.argmin(dominant)] += 1
    kinds = [c for c, count in zip(classes, dominant) for _ in range(count)] + ["blend"] * n_blend
    tier_counts = _apportion(n, np.array([share for share, _, _ in DURATION_TIERS.values()]), rng)
    tiers = [t for t, count in zip(DURATION_TIERS, tier_counts) for _ in range(count)]
    return [str(k) for k in rng.permutation(kinds)], [str(t) for t in rng.permutation(tiers)]


def _apportion(n: int, shares: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Integer counts summing to `n` in proportion to `shares`. The units left after
    rounding down go to the largest remainders, or, with `rng`, to items drawn with
    probability proportional to their remainders (so small corpora are unbiased)."""
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    remainder = exact - counts
    left = n - counts.sum()
    if left:
        if rng is None:
            chosen = np.argsort(-remainder, kind="stable")[:left]
        else:
            chosen = rng.choice(len(shares), size=left, replace=False, p=remainder / remainder.sum())
        counts[chosen] += 1
    return counts


def _plan_utterance(rng, index, utt_id, path, speaker, session, voice, baseline, kind, tier, pool, classes):
    true = _true_distribution(rng, kind, classes)
    outside = rng.uniform(0.35, 0.75) if kind == "blend" and rng.random() < OUTSIDE_EMOTION_SHARE else 0.0
    votes, annotations = _annotate(rng, true, pool, outside)
    prosody = _blend_prosody(true, classes)
    _, low, high = DURATION_TIERS[tier]
    target_s = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    pad_s = tuple(float(x) for x in rng.uniform(0.05, 0.15 if tier == "short" else 0.3, size=2))
    rate = baseline["rate"] * prosody.rate * np.exp(rng.normal(0.0, 0.05))
    words = word_sequence(rng)
    arousal = sum(p for p, c in zip(true, classes) if c in ("anger", "happiness"))
    ending = "!" if rng.random() < arousal - 0.3 else ("?" if rng.random() < 0.1 else ".")
    return Utterance(
        index=index, utt_id=utt_id, path=path, speaker=speaker, session=session, voice=voice,
        true=true, votes=votes, words=words, annotations=annotations, outside=outside,
        n_words=max(1, round((target_s - sum(pad_s)) * rate / 60)),
        ending=ending, tier=tier, target_s=target_s, pad_s=pad_s,
        rate=int(np.clip(round(rate), 90, 320)),
        pitch=int(np.clip(round(baseline["pitch"] + prosody.pitch + rng.normal(0.0, 3.0)), 0, 100)),
        pitch_range=int(np.clip(round(baseline["pitch_range"] + prosody.pitch_range + rng.normal(0.0, 4.0)), 0, 100)),
        word_gap=int(np.clip(round(prosody.word_gap + rng.normal(0.0, 0.5)), 0, 20)),
        gain_db=float(baseline["gain_db"] + prosody.gain_db + rng.normal(0.0, 0.75)),
        tilt=float(np.clip(baseline["tilt"] + prosody.tilt + rng.normal(0.0, 0.1), -1, 1)),
        breath=float(np.clip(prosody.breath + rng.normal(0.0, 0.05), 0, 1)),
        drive=float(np.clip(prosody.drive + rng.normal(0.0, 0.05), 0, 1)),
        seed=int(rng.integers(2**31)),
    )


def _true_distribution(rng: np.random.Generator, kind: str, classes: tuple[str, ...]) -> np.ndarray:
    """Peaked on the dominant class (0.8-0.97), or a near-even blend of three classes picked
    with the class shares plus a little of everything.

    Rounded to 4 decimals, the largest entry absorbing the rounding, so the manifest's
    ``true_*`` columns sum to exactly 1.
    """
    k = len(classes)
    shares = np.array([DOMINANT_SHARE[c] for c in classes])
    if kind == "blend":
        p = np.zeros(k)
        p[rng.choice(k, size=3, replace=False, p=shares / shares.sum())] = 0.94 * rng.dirichlet([12.0] * 3)
        p += 0.06 * rng.dirichlet(np.ones(k))
    else:
        peak = rng.uniform(0.8, 0.97)
        p = np.insert((1 - peak) * rng.dirichlet(np.ones(k - 1)), classes.index(kind), peak)
    p = np.round(p, 4)
    top = int(np.argmax(p))
    p[top] = round(1.0 - (p.sum() - p[top]), 4)
    return p


def _annotate(rng: np.random.Generator, true: np.ndarray, pool: list[Annotator],
              outside: float) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """Votes ``[K + 1]`` (target classes, then other) of 3-5 annotators from the pool, and who
    gave each: (pool index, class index) pairs, K meaning other.

    Annotator a perceives q_a ∝ true^(1/T_a) · bias_a, and with its `other_rate`, raised by
    the utterance's `outside` emotion share, an emotion outside the targets. The panel votes by
    stratified sampling: annotator i reads its own cumulative distribution (classes from most
    to least likely, other last) at (π(i) + U_i) / n for a random permutation π. Each vote
    still follows its annotator's distribution, but the panel's counts track the
    distributions closely instead of scattering as independent draws would, which keeps the
    share of ambiguous utterances stable across seeds and sizes.
    """
    counts, probabilities = zip(*ANNOTATORS_PER_UTTERANCE)
    n = int(rng.choice(counts, p=probabilities))
    panel = rng.choice(len(pool), size=n, replace=False)
    order = np.append(np.argsort(-true, kind="stable"), len(true))
    positions = (rng.permutation(n) + rng.uniform(size=n)) / n
    votes = np.zeros(len(true) + 1, dtype=int)
    annotations = []
    for a, u in zip(panel, positions):
        cumulative = np.cumsum(_perception(pool[a], true, outside)[order])
        slot = min(int(np.searchsorted(cumulative, u * cumulative[-1], side="right")), len(order) - 1)
        votes[order[slot]] += 1
        annotations.append((int(a), int(order[slot])))
    return votes, tuple(annotations)


def _perception(annotator: Annotator, true: np.ndarray, outside: float) -> np.ndarray:
    """What `annotator` perceives of an utterance, ``[K + 1]`` (target classes, then other): the
    distribution its vote on the utterance is drawn from (`_annotate`)."""
    q = np.power(true, 1.0 / annotator.temperature) * annotator.bias
    if annotator.confusion_share:  # hears `heard` as `heard_as` that often
        heard, heard_as = annotator.confusion
        moved = annotator.confusion_share * q[heard]
        q = q.copy()
        q[heard] -= moved
        q[heard_as] += moved
    other = 1 - (1 - annotator.other_rate) * (1 - outside)
    return np.append((1 - other) * q / q.sum(), other)


def _blend_prosody(true: np.ndarray, classes: tuple[str, ...]) -> Prosody:
    return Prosody(**{
        f.name: float(sum(p * getattr(EMOTION_PROSODY[c], f.name) for p, c in zip(true, classes)))
        for f in fields(Prosody)
    })


# ---------------------------------------------------------------------------------------
# Render: eSpeak NG -> 16 kHz -> voice quality -> loudness -> pauses and noise floor.


def render_utterance(utt: Utterance, sample_rate: int = DataConfig.sample_rate) -> np.ndarray:
    """The utterance as int16 samples at `sample_rate`.

    The number of words is adjusted (a few re-syntheses at most) until the duration lies in
    the utterance's tier.
    """
    n_words = utt.n_words
    low, high = TIER_BOUNDS[utt.tier]
    pause_s = sum(utt.pad_s)
    for _ in range(8):
        speech = _speak(utt, n_words, sample_rate)
        speech_s = len(speech) / sample_rate
        if low <= speech_s + pause_s <= high:
            break
        step = round(n_words * (utt.target_s - pause_s) / max(speech_s, 1e-3)) - n_words
        n_words = int(np.clip(n_words + (step or (1 if speech_s + pause_s < low else -1)), 1, len(utt.words)))
    rng = _rng(utt.seed, _RENDER, utt.index)
    speech = _set_level(_voice_quality(speech, utt, sample_rate, rng), LEVEL_DBFS + utt.gain_db)
    lead, tail = (round(s * sample_rate) for s in utt.pad_s)
    audio = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    audio += rng.normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), len(audio))
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def _speak(utt: Utterance, n_words: int, sample_rate: int) -> np.ndarray:
    audio, espeak_rate = espeak.synthesize(
        _text(utt.words, n_words, utt.ending), utt.voice, rate=utt.rate, pitch=utt.pitch,
        pitch_range=utt.pitch_range, word_gap=utt.word_gap, rand_seed=utt.seed,
    )
    return soxr.resample(audio.astype(np.float64), espeak_rate, sample_rate, quality="HQ")


def _voice_quality(x: np.ndarray, utt: Utterance, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Spectral tilt, breathiness and harshness, each scaled by the emotion blend."""
    # Tilt: split at ~1.5 kHz with a one-pole low-pass, re-weight the high band
    # (+8 dB at tilt 1, -12 dB at tilt -1).
    pole = np.exp(-2 * np.pi * 1500 / sample_rate)
    low = scipy.signal.lfilter([1 - pole], [1, -pole], x)
    x = low + (1 + (1.5 if utt.tilt > 0 else 0.75) * utt.tilt) * (x - low)
    # Breathiness: band-passed noise following the speech envelope replaces some voicing.
    envelope = np.sqrt(scipy.signal.lfilter([0.01], [1, -0.99], x**2) + 1e-12)
    sos = scipy.signal.butter(2, [800, 4000], btype="bandpass", fs=sample_rate, output="sos")
    aspiration = scipy.signal.sosfilt(sos, rng.standard_normal(len(x))) * envelope
    x = (1 - 0.15 * utt.breath) * x + 0.3 * utt.breath * aspiration
    # Harshness: soft saturation of the peak-normalised signal.
    peak = np.max(np.abs(x)) + 1e-12
    drive = 1 + 5 * utt.drive
    return np.tanh(drive * x / peak) / np.tanh(drive) * peak


def _set_level(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale to an active-speech RMS of `level_dbfs` (10 ms frames within 35 dB of the
    loudest); soft-limit peaks near full scale."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    energy = np.mean(frames**2, axis=1)
    rms = np.sqrt(np.mean(energy[energy > energy.max() * 10 ** (-35 / 10)])) + 1e-12
    return 0.95 * np.tanh(x * (10 ** (level_dbfs / 20) / rms) / 0.95)


def _wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _render_and_write(job: tuple[Utterance, str, int]) -> tuple[int, float]:
    utt, out_dir, sample_rate = job
    samples = render_utterance(utt, sample_rate)
    atomic_write_bytes(Path(out_dir) / utt.path, _wav_bytes(samples, sample_rate))
    return utt.index, round(len(samples) / sample_rate, 3)


# ---------------------------------------------------------------------------------------
# The corpus.


def synthesize_corpus(
    out_dir: str | Path,
    seed: int = SynthConfig.seed,
    size: str = SynthConfig.size,
    progress: bool = True,
    *,
    workers: int = SynthConfig.workers,
    per_speaker: int | None = None,
    annotator_temperature: float = SynthConfig.annotator_temperature,
    annotator_confusion: float = SynthConfig.annotator_confusion,
) -> Path:
    """Generate the corpus in `out_dir` (WAVs under ``wav/``) and return its manifest path.

    A seed and size give byte-identical files for any number of `workers` (processes, at
    most one per `UTTERANCES_PER_WORKER` utterances since starting one costs time). An
    existing manifest is removed first and the new one written last, so an interrupted run
    never leaves a manifest pointing at missing or mismatched audio; WAVs of an earlier,
    larger corpus that the new one lacks are removed. `per_speaker` overrides the size's
    number of utterances per speaker.
    """
    if workers < 1:
        raise ConfigError(f"synth workers must be at least 1, got {workers}")
    out_dir = Path(out_dir)
    utterances = plan_corpus(seed, size, per_speaker, annotator_temperature, annotator_confusion)
    sample_rate = DataConfig().sample_rate
    manifest_path = out_dir / "manifest.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    _remove_stale_wavs(out_dir, {u.path for u in utterances})

    label = size if per_speaker is None else f"{per_speaker}/speaker"
    durations = render_all(utterances, out_dir, sample_rate, workers, f"synth {label}", progress)
    write_annotations(annotations_frame(utterances), manifest_path)
    return write_manifest(manifest_frame(utterances, durations), manifest_path)  # last: the corpus is complete


def render_all(utterances: list[Utterance], out_dir: Path, sample_rate: int, workers: int, desc: str,
               progress: bool) -> dict[int, float]:
    """Render and write every utterance (in `workers` processes, at most one per
    `UTTERANCES_PER_WORKER`); returns each one's duration in seconds, keyed by its index."""
    jobs = [(utt, str(out_dir), sample_rate) for utt in utterances]
    workers = max(1, min(workers, len(jobs) // UTTERANCES_PER_WORKER))
    durations: dict[int, float] = {}
    with tqdm(total=len(jobs), desc=desc, unit="utt", disable=not progress) as bar:
        if workers == 1:
            for index, duration in map(_render_and_write, jobs):
                durations[index] = duration
                bar.update()
        else:
            # "spawn": workers must not inherit the parent's threads (torch) or locks.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for index, duration in pool.imap_unordered(_render_and_write, jobs, chunksize=4):
                    durations[index] = duration
                    bar.update()
    return durations


def _remove_stale_wavs(out_dir: Path, keep: set[str]) -> None:
    for path in (out_dir / "wav").glob("Ses*/*.wav"):
        relative = path.relative_to(out_dir).as_posix()
        if _WAV_NAME.fullmatch(path.name) and relative not in keep:
            path.unlink()
