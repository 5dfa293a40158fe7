"""Unlabelled speech for pretraining the temporal branch (`ser synth --unlabelled`).

Hours of eSpeak NG speech from many speakers, with varied text and prosody, and no labels.
It is built to be disjoint from the evaluation corpora:

- **speakers**: every (accent, voice variant) pair uses a variant that the labelled synthetic
  corpus never uses (`synth.VOICES`), over five English accents other than its plain "en";
  each speaker also has its own baseline pitch, range and rate;
- **texts**: the same sentence grammar over `PRETRAINING_VOCABULARY`, which shares no content
  word with the labelled corpus' (`synth.EVALUATION_VOCABULARY`);
- **prosody**: each utterance draws pitch, range, rate, pauses, loudness, spectral tilt,
  breathiness and harshness independently and uniformly over the range that speech of any
  emotion spans. No utterance is an emotion, so nothing here is a label; but the dimensions are
  those the labelled corpus renders its emotions along, which makes this audio closer to the
  synthetic evaluation corpus than a generic speech corpus would be to a real one. EmoDB, real
  speech by real actors, is the check that does not share the generator.

It reuses the labelled corpus' renderer (`synth.render_utterance`) and its guarantees: a seed
gives byte-identical files for any number of workers, the manifest is written last, atomically.
The manifest has no vote columns (`manifest.read_manifest(labelled=False)` reads it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...config import DataConfig
from ...errors import ConfigError
from ..manifest import write_manifest
from . import synth
from .synth import Utterance, Vocabulary, word_sequence

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
EVALUATION_VARIANTS = frozenset(v for pair in synth.VOICES for v in pair)
VARIANTS = tuple(v for v in _HUMAN_VARIANTS if v not in EVALUATION_VARIANTS)

PRETRAINING_VOCABULARY = Vocabulary(
    subjects=("the farmer", "my cousin", "the pilot", "our captain", "Maria", "Tom", "the nurse", "her uncle",
              "the students", "a stranger", "the baker", "his sister", "the manager", "Lucy", "the twins",
              "somebody"),
    verbs=("wrapped", "washed", "repaired", "printed", "hid", "stole", "counted", "weighed", "measured",
           "delivered", "dropped", "shared", "packed", "tested", "signed", "returned"),
    adjectives=("red", "tiny", "silver", "dusty", "tall", "soft", "bright", "plastic", "narrow", "golden",
                "frozen", "ancient", "purple", "round", "spare", "blue"),
    nouns=("parcel", "lamp", "ladder", "jacket", "clock", "blanket", "guitar", "envelope", "tractor", "helmet",
           "suitcase", "mirror", "carpet", "notebook", "wallet", "hammer"),
    places=("at the harbour", "during the storm", "after lunch", "behind the barn", "on Friday",
            "during the concert", "in the village", "at school", "next spring", "under the bridge",
            "tonight", "at the airport", "twice", "every winter"),
    joins=("and", "but", "so", "then", "because", "while"),
    openers=("right", "hey", "you know", "alright", "wait", "see"),
)

# Prosody per utterance, each dimension drawn on its own, uniformly: the span of synth.EMOTION_PROSODY
# (anger to sadness) and a little beyond, around the speaker's baseline.
PROSODY_RANGES = {
    "pitch": (-20.0, 26.0), "pitch_range": (-36.0, 38.0), "log_rate": (np.log(0.7), np.log(1.28)),
    "word_gap": (0.0, 6.0), "gain_db": (-9.0, 8.0), "tilt": (-1.0, 1.0), "breath": (0.0, 1.0), "drive": (0.0, 1.0),
}
DEFAULT_SPEAKERS = 48
# Duration tiers and their shares as in the labelled corpus, so padding and segmentation look alike.
_PLAN, _SPEAKER = 100, 101  # random streams, apart from synth's


def speakers(count: int = DEFAULT_SPEAKERS) -> list[tuple[str, str]]:
    """(speaker id, eSpeak voice) of `count` speakers: variants in turn, accents in turn, so the
    first speakers already cover every accent. At most len(ACCENTS) * len(VARIANTS)."""
    limit = len(ACCENTS) * len(VARIANTS)
    if not 1 <= count <= limit:
        raise ConfigError(f"unlabelled speech has between 1 and {limit} speakers, got {count}")
    pairs = [(ACCENTS[i % len(ACCENTS)], VARIANTS[(i * 7) % len(VARIANTS)]) for i in range(count)]
    return [(f"pt{i:03d}", f"{accent}+{variant}") for i, (accent, variant) in enumerate(pairs)]


def plan_unlabelled(hours: float, seed: int = 0, num_speakers: int = DEFAULT_SPEAKERS) -> list[Utterance]:
    """Utterances (without audio) until their planned durations add up to `hours`, speakers in turn."""
    if not hours > 0:
        raise ConfigError(f"the unlabelled speech needs a positive number of hours, got {hours}")
    voices = speakers(num_speakers)
    baselines = [_speaker_baseline(seed, i) for i in range(num_speakers)]
    counters = [0] * num_speakers
    utterances, total_s = [], 0.0
    while total_s < hours * 3600:
        index = len(utterances)
        s = index % num_speakers
        speaker, voice = voices[s]
        utt_id = f"{speaker}_u{counters[s]:05d}"
        counters[s] += 1
        utt = _plan_utterance(synth._rng(seed, _PLAN, index), index, utt_id, speaker, voice, baselines[s])
        utterances.append(utt)
        total_s += utt.target_s
    return utterances


def _speaker_baseline(seed: int, speaker_ix: int) -> dict[str, float]:
    rng = synth._rng(seed, _SPEAKER, speaker_ix)
    return {"pitch": rng.uniform(32, 68), "pitch_range": rng.uniform(38, 62), "rate": synth.SPEAKER_WPM * rng.uniform(0.85, 1.15),
            "gain_db": rng.uniform(-3.0, 3.0), "tilt": rng.uniform(-0.3, 0.3)}


def _plan_utterance(rng, index, utt_id, speaker, voice, baseline) -> Utterance:
    draw = {name: float(rng.uniform(low, high)) for name, (low, high) in PROSODY_RANGES.items()}
    tiers = list(synth.DURATION_TIERS)
    tier = tiers[int(rng.choice(len(tiers), p=[share for share, _, _ in synth.DURATION_TIERS.values()]))]
    _, low, high = synth.DURATION_TIERS[tier]
    target_s = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    pad_s = tuple(float(x) for x in rng.uniform(0.05, 0.15 if tier == "short" else 0.3, size=2))
    rate = baseline["rate"] * np.exp(draw["log_rate"])
    words = word_sequence(rng, PRETRAINING_VOCABULARY)
    ending = str(rng.choice([".", "!", "?"], p=[0.7, 0.15, 0.15]))
    num_classes = len(DataConfig().classes)
    return Utterance(
        index=index, utt_id=utt_id, path=f"wav/{speaker}/{utt_id}.wav", speaker=speaker, session=speaker,
        voice=voice, true=np.zeros(num_classes), votes=np.zeros(num_classes + 1, dtype=int), words=words,
        n_words=max(1, round((target_s - sum(pad_s)) * rate / 60)), ending=ending, tier=tier, target_s=target_s,
        pad_s=pad_s, rate=int(np.clip(round(rate), 90, 320)),
        pitch=int(np.clip(round(baseline["pitch"] + draw["pitch"]), 0, 100)),
        pitch_range=int(np.clip(round(baseline["pitch_range"] + draw["pitch_range"]), 0, 100)),
        word_gap=int(round(draw["word_gap"])), gain_db=baseline["gain_db"] + draw["gain_db"],
        tilt=float(np.clip(baseline["tilt"] + draw["tilt"], -1, 1)), breath=draw["breath"], drive=draw["drive"],
        seed=int(rng.integers(2**31)),
    )


def synthesize_unlabelled(out_dir: str | Path, hours: float, seed: int = 0, *, num_speakers: int = DEFAULT_SPEAKERS,
                          workers: int = 2, progress: bool = True) -> Path:
    """Render `hours` of unlabelled speech into `out_dir` (``wav/<speaker>/``) and return its
    manifest (``utt_id, path, speaker, duration``; no votes). Byte-identical for a seed."""
    out_dir = Path(out_dir)
    utterances = plan_unlabelled(hours, seed, num_speakers)
    manifest_path = out_dir / "manifest.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    durations = synth.render_all(utterances, out_dir, DataConfig().sample_rate, workers,
                                 f"unlabelled speech {hours:g} h", progress)
    frame = pd.DataFrame({
        "utt_id": [u.utt_id for u in utterances], "path": [u.path for u in utterances],
        "speaker": [u.speaker for u in utterances], "duration": [durations[u.index] for u in utterances],
    })
    return write_manifest(frame, manifest_path, labelled=False)
