"""An utterance's plan: everything the renderer needs but the audio, for both corpora.

A speaker has a baseline voice (`Baseline`); an utterance offsets it by a prosody (`Prosody`: an
emotion blend in the labelled corpus, a uniform draw in the unlabelled speech), plus, in the
labelled corpus, a little random `Jitter`. `planned_utterance` turns these into eSpeak's
parameters. Durations come in tiers, so that padding (< 1.5 s) and segmentation (> 7 s) are
exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEAKER_WPM = 170  # mean speaking rate, words per minute
# Duration tiers, total seconds with pauses: (share, target low, target high), and the range the
# rendered duration must fall in.
DURATION_TIERS = {"short": (0.1, 0.9, 1.35), "medium": (0.8, 1.8, 6.6), "long": (0.1, 7.4, 9.6)}
TIER_BOUNDS = {"short": (0.0, 1.45), "medium": (1.55, 6.95), "long": (7.05, 10.0)}


@dataclass(frozen=True)
class Prosody:
    """Offsets from a speaker's baseline and voice-quality amounts (an emotion's, or a draw's)."""

    pitch: float  # eSpeak pitch, 0-100 scale
    pitch_range: float  # eSpeak pitch range, 0-100 scale
    rate: float  # factor on the speaker's words per minute
    word_gap: float  # extra pause between words, 10 ms units
    gain_db: float  # loudness
    tilt: float  # spectral tilt, -1 (dark) .. 1 (bright)
    breath: float  # aspiration noise, 0 .. 1
    drive: float  # soft saturation (harshness), 0 .. 1


@dataclass(frozen=True)
class Jitter:
    """An utterance's random deviation from its prosody, added after it (the rate's is a factor
    applied by the planner); none by default."""

    pitch: float = 0.0
    pitch_range: float = 0.0
    word_gap: float = 0.0
    gain_db: float = 0.0
    tilt: float = 0.0
    breath: float = 0.0
    drive: float = 0.0


@dataclass(frozen=True)
class Baseline:
    """A speaker's own voice, which every utterance's prosody offsets."""

    pitch: float  # eSpeak pitch
    pitch_range: float  # eSpeak pitch range
    rate: float  # words per minute
    gain_db: float
    tilt: float


@dataclass(frozen=True)
class BaselineRanges:
    """The uniform ranges a corpus draws its speakers' baselines from."""

    pitch: tuple[float, float]
    pitch_range: tuple[float, float]
    rate: tuple[float, float]  # factor on SPEAKER_WPM
    gain_db: tuple[float, float]
    tilt: tuple[float, float]


@dataclass(frozen=True)
class Speaker:
    index: int  # place in the corpus' speaker list
    name: str  # speaker id, e.g. "Ses01F"
    session: str  # an unlabelled speaker is a session of its own
    voice: str  # eSpeak voice, e.g. "en+f1"
    baseline: Baseline


@dataclass(frozen=True)
class Timing:
    tier: str
    target_s: float  # total duration aimed at, pauses included
    pad_s: tuple[float, float]  # leading and trailing pause


@dataclass
class Utterance:
    index: int  # place in the corpus
    utt_id: str
    path: str  # relative to the corpus folder
    speaker: str
    session: str
    voice: str  # eSpeak voice
    words: tuple[str, ...]  # the text is a prefix of these
    n_words: int  # first guess; rendering adjusts it until the duration is in the tier
    ending: str  # sentence punctuation
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
    # Labels, in the labelled corpus only.
    true: np.ndarray | None = None  # [K] true distribution over the target classes
    votes: np.ndarray | None = None  # [K + 1] votes for the target classes, then other
    # Who voted what: (annotator's index in the session's pool, class index; K = other), one per vote.
    annotations: tuple[tuple[int, int], ...] = ()
    outside: float = 0.0  # share of an emotion outside the target classes (raises "other" votes)


def draw_baseline(rng: np.random.Generator, ranges: BaselineRanges) -> Baseline:
    return Baseline(
        pitch=rng.uniform(*ranges.pitch),
        pitch_range=rng.uniform(*ranges.pitch_range),
        rate=SPEAKER_WPM * rng.uniform(*ranges.rate),
        gain_db=rng.uniform(*ranges.gain_db),
        tilt=rng.uniform(*ranges.tilt),
    )


def draw_tier(rng: np.random.Generator) -> str:
    """A duration tier drawn with the tiers' shares."""
    tiers = list(DURATION_TIERS)
    return tiers[int(rng.choice(len(tiers), p=[share for share, _, _ in DURATION_TIERS.values()]))]


def draw_timing(rng: np.random.Generator, tier: str) -> Timing:
    """A target duration, log-uniform within the tier, and pauses (short ones for short utterances)."""
    _, low, high = DURATION_TIERS[tier]
    target_s = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    pad_s = tuple(float(x) for x in rng.uniform(0.05, 0.15 if tier == "short" else 0.3, size=2))
    return Timing(tier, target_s, pad_s)


def planned_utterance(*, index: int, utt_id: str, speaker: Speaker, timing: Timing, rate: float,
                      words: tuple[str, ...], ending: str, prosody: Prosody, jitter: Jitter = Jitter(),
                      seed: int, **labels) -> Utterance:
    """The utterance `speaker` says at `rate` words per minute: eSpeak's parameters are the speaker's
    baseline plus `prosody` plus `jitter`, clipped to eSpeak's ranges; `labels` are Utterance's label
    fields."""
    base = speaker.baseline
    return Utterance(
        index=index, utt_id=utt_id, path=f"wav/{speaker.session}/{utt_id}.wav", speaker=speaker.name,
        session=speaker.session, voice=speaker.voice, words=words, ending=ending,
        # First guess: as many words as the rate fits between the pauses.
        n_words=max(1, round((timing.target_s - sum(timing.pad_s)) * rate / 60)),
        tier=timing.tier, target_s=timing.target_s, pad_s=timing.pad_s,
        rate=int(np.clip(round(rate), 90, 320)),
        pitch=int(np.clip(round(base.pitch + prosody.pitch + jitter.pitch), 0, 100)),
        pitch_range=int(np.clip(round(base.pitch_range + prosody.pitch_range + jitter.pitch_range), 0, 100)),
        word_gap=int(np.clip(round(prosody.word_gap + jitter.word_gap), 0, 20)),
        gain_db=float(base.gain_db + prosody.gain_db + jitter.gain_db),
        tilt=float(np.clip(base.tilt + prosody.tilt + jitter.tilt, -1, 1)),
        breath=float(np.clip(prosody.breath + jitter.breath, 0, 1)),
        drive=float(np.clip(prosody.drive + jitter.drive, 0, 1)),
        seed=seed, **labels,
    )
