"""The labelled corpus' plan: sessions, speakers and every utterance's labels, text and prosody,
without audio (cheap; `labelled.synthesize_corpus` renders it).

Layout as in IEMOCAP: 5 sessions x 2 speakers (one female, one male voice), each speaker with
the same number of utterances, its mix of kinds and durations fixed by quotas.
"""

from __future__ import annotations

import numpy as np

from ....config import SYNTH_SIZES, SynthConfig, check_annotator_temperature
from ....errors import ConfigError
from .annotators import Annotator, annotate, session_pool
from .emotions import DOMINANT_SHARE, arousal, blend_prosody, target_classes, true_distribution
from .grammar import EVALUATION_VOCABULARY, word_sequence
from .streams import Stream, generator
from .utterance import (DURATION_TIERS, BaselineRanges, Jitter, Speaker, Utterance, draw_baseline, draw_timing,
                        planned_utterance)

UTTERANCES_PER_SPEAKER = SYNTH_SIZES  # per corpus size; `config` owns the sizes, for the CLI and validation
SESSIONS = 5
# eSpeak voice variants per session: (female, male).
VOICES = (("f1", "m1"), ("f2", "m2"), ("f3", "m3"), ("f4", "m4"), ("f5", "m7"))
SPEAKER_RANGES = BaselineRanges(pitch=(42, 58), pitch_range=(44, 58), rate=(0.9, 1.1), gain_db=(-2.0, 2.0),
                                tilt=(-0.2, 0.2))
# Standard deviations of an utterance's deviation from its emotion's prosody (the rate's: of its log).
JITTER_SD = Jitter(pitch=3.0, pitch_range=4.0, word_gap=0.5, gain_db=0.75, tilt=0.1, breath=0.05, drive=0.05)
RATE_JITTER_SD = 0.05

# Per speaker: the share of utterances blending three emotions (most of them come out ambiguous;
# tuned so that ~40% of the corpus does); the others are dominated by one class with
# `emotions.DOMINANT_SHARE`, at least MIN_DOMINANT per class so every speaker has clear samples of
# every class.
BLEND_SHARE = 0.46
MIN_DOMINANT = 3
# Share of blends that also carry an emotion outside the target classes (frustration, surprise,
# ...), which annotators vote as "other".
OUTSIDE_EMOTION_SHARE = 0.04


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
    check_annotator_temperature(annotator_temperature)
    classes = target_classes()
    per_speaker = _utterances_per_speaker(size, per_speaker)
    utterances = []
    for session_ix in range(SESSIONS):
        pool = session_pool(seed, session_ix, len(classes), max_temperature=annotator_temperature,
                            confusion=annotator_confusion)
        for speaker in session_speakers(seed, session_ix):
            kinds, tiers = speaker_quotas(seed, speaker.index, per_speaker, classes)
            for j, (kind, tier) in enumerate(zip(kinds, tiers)):
                index = speaker.index * per_speaker + j
                utterances.append(plan_utterance(
                    generator(seed, Stream.PLAN, index), index=index, utt_id=f"{speaker.name}_u{j:04d}",
                    speaker=speaker, kind=kind, tier=tier, pool=pool, classes=classes,
                ))
    return utterances


def _utterances_per_speaker(size: str, per_speaker: int | None) -> int:
    if per_speaker is None:
        if size not in UTTERANCES_PER_SPEAKER:
            raise ConfigError(f"synthetic corpus size must be one of {list(UTTERANCES_PER_SPEAKER)}, got {size!r}")
        per_speaker = UTTERANCES_PER_SPEAKER[size]
    if per_speaker < 1:
        raise ConfigError(f"utterances per speaker must be at least 1, got {per_speaker}")
    return per_speaker


def session_name(session_ix: int) -> str:
    return f"Ses{session_ix + 1:02d}"


def session_speakers(seed: int, session_ix: int) -> list[Speaker]:
    """The session's female and male speaker (``Ses01F``, ``Ses01M``), each with its own baseline."""
    session = session_name(session_ix)
    speakers = []
    for gender_ix, gender in enumerate("FM"):
        index = 2 * session_ix + gender_ix
        baseline = draw_baseline(generator(seed, Stream.SPEAKER, index), SPEAKER_RANGES)
        speakers.append(Speaker(index=index, name=session + gender, session=session,
                                voice=f"en+{VOICES[session_ix][gender_ix]}", baseline=baseline))
    return speakers


def speaker_quotas(seed: int, speaker_ix: int, n: int, classes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Per utterance of a speaker, shuffled: its kind (a dominant class or "blend") and its
    duration tier. Quotas rather than independent draws keep every speaker close to the
    design, even in the small corpus."""
    rng = generator(seed, Stream.QUOTA, speaker_ix)
    # Stochastic rounding: 12.5 blends of 25 gives 12 or 13 with equal chance, not always 13.
    n_blend = int(np.floor(n * BLEND_SHARE) + (rng.random() < n * BLEND_SHARE % 1))
    dominant = apportion(n - n_blend, np.array([DOMINANT_SHARE[c] for c in classes]))
    while dominant.min() < min(MIN_DOMINANT, (n - n_blend) // len(classes)):
        dominant[np.argmax(dominant)] -= 1
        dominant[np.argmin(dominant)] += 1
    kinds = [c for c, count in zip(classes, dominant) for _ in range(count)] + ["blend"] * n_blend
    tier_counts = apportion(n, np.array([share for share, _, _ in DURATION_TIERS.values()]), rng)
    tiers = [t for t, count in zip(DURATION_TIERS, tier_counts) for _ in range(count)]
    return [str(k) for k in rng.permutation(kinds)], [str(t) for t in rng.permutation(tiers)]


def apportion(n: int, shares: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
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


def plan_utterance(rng: np.random.Generator, *, index: int, utt_id: str, speaker: Speaker, kind: str, tier: str,
                   pool: list[Annotator], classes: tuple[str, ...]) -> Utterance:
    """One utterance of `speaker`: its truth (of `kind`), the votes of a panel from `pool`, and the
    text and prosody rendering the truth. The order of the draws is part of the corpus."""
    true = true_distribution(rng, kind, classes)
    outside = rng.uniform(0.35, 0.75) if kind == "blend" and rng.random() < OUTSIDE_EMOTION_SHARE else 0.0
    votes, annotations = annotate(rng, true, pool, outside)
    prosody = blend_prosody(true, classes)
    timing = draw_timing(rng, tier)
    rate = speaker.baseline.rate * prosody.rate * np.exp(rng.normal(0.0, RATE_JITTER_SD))
    words = word_sequence(rng, EVALUATION_VOCABULARY)
    ending = "!" if rng.random() < arousal(true, classes) - 0.3 else ("?" if rng.random() < 0.1 else ".")
    jitter = _draw_jitter(rng)
    return planned_utterance(
        index=index, utt_id=utt_id, speaker=speaker, timing=timing, rate=rate, words=words, ending=ending,
        prosody=prosody, jitter=jitter, seed=int(rng.integers(2**31)),
        true=true, votes=votes, annotations=annotations, outside=outside,
    )


def _draw_jitter(rng: np.random.Generator) -> Jitter:
    return Jitter(pitch=rng.normal(0.0, JITTER_SD.pitch), pitch_range=rng.normal(0.0, JITTER_SD.pitch_range),
                  word_gap=rng.normal(0.0, JITTER_SD.word_gap), gain_db=rng.normal(0.0, JITTER_SD.gain_db),
                  tilt=rng.normal(0.0, JITTER_SD.tilt), breath=rng.normal(0.0, JITTER_SD.breath),
                  drive=rng.normal(0.0, JITTER_SD.drive))
