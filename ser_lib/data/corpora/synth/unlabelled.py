"""Unlabelled speech for pretraining the temporal branch (`ser synth --unlabelled`).

Hours of speech from many speakers, with varied text and prosody, and no labels, rendered by
eSpeak NG or by Flite (`pretrain.synthesizer`). It is built to be disjoint from the evaluation
corpora:

- **speakers**: with eSpeak, every (accent, voice variant) pair uses a variant that the labelled
  synthetic corpus never uses (`plan.VOICES`), over five English accents other than its plain "en";
  with Flite, speakers take its four voices in turn (`flite.VOICE_F0_HZ`), which no evaluation
  corpus uses. Each speaker also has its own baseline pitch, range and rate;
- **texts**: the same sentence grammar over `grammar.PRETRAINING_VOCABULARY`, which shares no
  content word with the labelled corpus' (`grammar.EVALUATION_VOCABULARY`);
- **prosody**: each utterance draws pitch, range, rate, pauses, loudness, spectral tilt,
  breathiness and harshness independently and uniformly over the range that speech of any
  emotion spans. No utterance is an emotion, so nothing here is a label; but the dimensions are
  those the labelled corpus renders its emotions along, which makes this audio closer to the
  synthetic evaluation corpus than a generic speech corpus would be to a real one. EmoDB, real
  speech by real actors, is the check that does not share the generator.

It shares the labelled corpus' planning (`utterance`), renderer (`render`, `parallel`) and their
guarantees: a seed gives byte-identical files for any number of workers, the manifest is written
last, atomically. The manifest has no vote columns (`manifest.read_manifest(labelled=False)` reads it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ....config import DataConfig
from ....errors import ConfigError
from ...manifest import write_manifest
from .. import flite
from .grammar import PRETRAINING_VOCABULARY, word_sequence
from .parallel import render_all
from .plan import VOICES
from .streams import Stream, generator
from .utterance import (BaselineRanges, Prosody, Speaker, Utterance, draw_baseline, draw_tier, draw_timing,
                        planned_utterance)

ACCENTS = ("en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029")
# eSpeak NG voice variants that sound like people (the robotic and novelty ones are left out),
# minus those the labelled corpus uses.
_HUMAN_VARIANTS = (
    "m5", "m6", "m8", "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Henrique", "Hugo",
    "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "Reed", "adam", "anika", "antonio", "aunty",
    "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "grandma", "grandpa", "gustave", "ian",
    "iven", "john", "linda", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy",
    "rob", "robert", "sandro", "shelby", "steph", "travis",
)
EVALUATION_VARIANTS = frozenset(v for pair in VOICES for v in pair)
VARIANTS = tuple(v for v in _HUMAN_VARIANTS if v not in EVALUATION_VARIANTS)
DEFAULT_SPEAKERS = 48
# Wider than the labelled corpus' speakers (`plan.SPEAKER_RANGES`).
SPEAKER_RANGES = BaselineRanges(pitch=(32, 68), pitch_range=(38, 62), rate=(0.85, 1.15), gain_db=(-3.0, 3.0),
                                tilt=(-0.3, 0.3))
# Each synthesizer's (speaker, plan) streams: a Flite corpus says other sentences than an eSpeak one.
_STREAMS = {"espeak": (Stream.UNLABELLED_SPEAKER, Stream.UNLABELLED_PLAN),
            "flite": (Stream.FLITE_SPEAKER, Stream.FLITE_PLAN)}
# Prosody per utterance, each dimension drawn on its own, uniformly: the span of
# `emotions.EMOTION_PROSODY` (anger to sadness) and a little beyond, around the speaker's baseline.
PROSODY_RANGES = {
    "pitch": (-20.0, 26.0), "pitch_range": (-36.0, 38.0), "log_rate": (np.log(0.7), np.log(1.28)),
    "word_gap": (0.0, 6.0), "gain_db": (-9.0, 8.0), "tilt": (-1.0, 1.0), "breath": (0.0, 1.0), "drive": (0.0, 1.0),
}


def speakers(count: int = DEFAULT_SPEAKERS, synthesizer: str = "espeak") -> list[tuple[str, str]]:
    """(speaker id, voice) of `count` speakers. eSpeak: variants in turn, accents in turn, so the
    first speakers already cover every accent; at most len(ACCENTS) * len(VARIANTS). Flite:
    its voices in turn, as ``flite:<voice>`` (`render` dispatches on the prefix)."""
    if synthesizer == "flite":
        voices = list(flite.VOICE_F0_HZ)
        return [(f"fl{i:03d}", f"flite:{voices[i % len(voices)]}") for i in range(_checked(count, 999))]
    if synthesizer != "espeak":
        raise ConfigError(f"the unlabelled speech's synthesizer must be 'espeak' or 'flite', got {synthesizer!r}")
    count = _checked(count, len(ACCENTS) * len(VARIANTS))
    pairs = [(ACCENTS[i % len(ACCENTS)], VARIANTS[(i * 7) % len(VARIANTS)]) for i in range(count)]
    return [(f"pt{i:03d}", f"{accent}+{variant}") for i, (accent, variant) in enumerate(pairs)]


def _checked(count: int, limit: int) -> int:
    if not 1 <= count <= limit:
        raise ConfigError(f"unlabelled speech has between 1 and {limit} speakers, got {count}")
    return count


def plan_unlabelled(hours: float, seed: int = 0, num_speakers: int = DEFAULT_SPEAKERS,
                    synthesizer: str = "espeak") -> list[Utterance]:
    """Utterances (without audio) until their planned durations add up to `hours`, speakers in turn."""
    if not hours > 0:
        raise ConfigError(f"the unlabelled speech needs a positive number of hours, got {hours}")
    voices = speakers(num_speakers, synthesizer)  # refuses an unknown synthesizer
    speaker_stream, plan_stream = _STREAMS[synthesizer]
    talkers = [
        Speaker(index=i, name=name, session=name, voice=voice,
                baseline=draw_baseline(generator(seed, speaker_stream, i), SPEAKER_RANGES))
        for i, (name, voice) in enumerate(voices)
    ]
    utterances, total_s = [], 0.0
    while total_s < hours * 3600:
        index = len(utterances)
        speaker = talkers[index % num_speakers]
        utt_id = f"{speaker.name}_u{index // num_speakers:05d}"  # the speaker's own count
        utt = _plan_utterance(generator(seed, plan_stream, index), index, utt_id, speaker)
        utterances.append(utt)
        total_s += utt.target_s
    return utterances


def _plan_utterance(rng: np.random.Generator, index: int, utt_id: str, speaker: Speaker) -> Utterance:
    prosody = _draw_prosody(rng)
    timing = draw_timing(rng, draw_tier(rng))
    words = word_sequence(rng, PRETRAINING_VOCABULARY)
    ending = str(rng.choice([".", "!", "?"], p=[0.7, 0.15, 0.15]))
    return planned_utterance(
        index=index, utt_id=utt_id, speaker=speaker, timing=timing, rate=speaker.baseline.rate * prosody.rate,
        words=words, ending=ending, prosody=prosody, seed=int(rng.integers(2**31)),
    )


def _draw_prosody(rng: np.random.Generator) -> Prosody:
    draw = {name: float(rng.uniform(low, high)) for name, (low, high) in PROSODY_RANGES.items()}
    draw["rate"] = float(np.exp(draw.pop("log_rate")))  # the rate: log-uniform
    return Prosody(**draw)


def synthesize_unlabelled(out_dir: str | Path, hours: float, seed: int = 0, *, num_speakers: int = DEFAULT_SPEAKERS,
                          synthesizer: str = "espeak", workers: int = 2, progress: bool = True) -> Path:
    """Render `hours` of unlabelled speech into `out_dir` (``wav/<speaker>/``) and return its
    manifest (``utt_id, path, speaker, duration``; no votes). Byte-identical for a seed."""
    out_dir = Path(out_dir)
    utterances = plan_unlabelled(hours, seed, num_speakers, synthesizer)
    manifest_path = out_dir / "manifest.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    durations = render_all(utterances, out_dir, DataConfig().sample_rate, workers,
                           f"unlabelled speech ({synthesizer}) {hours:g} h", progress)
    frame = pd.DataFrame({
        "utt_id": [u.utt_id for u in utterances], "path": [u.path for u in utterances],
        "speaker": [u.speaker for u in utterances], "duration": [durations[u.index] for u in utterances],
    })
    return write_manifest(frame, manifest_path, labelled=False)
