"""What a labelled utterance expresses: its true emotion distribution and the prosody that renders it.

The usual acoustic correlates (`EMOTION_PROSODY`): anger loud, fast, wide range and harsh; happiness
high, wide and fast; sadness low, slow, narrow, quiet, dark and breathy; neutral in between. An
utterance's prosody is these targets weighted by its true distribution.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from ....config import DataConfig
from ....errors import ConfigError
from .utterance import Prosody

EMOTION_PROSODY = {
    "anger": Prosody(pitch=8, pitch_range=28, rate=1.18, word_gap=0, gain_db=6.0, tilt=1.0, breath=0.0, drive=1.0),
    "happiness": Prosody(pitch=20, pitch_range=32, rate=1.12, word_gap=0, gain_db=3.0, tilt=0.4, breath=0.1,
                         drive=0.15),
    "sadness": Prosody(pitch=-14, pitch_range=-30, rate=0.74, word_gap=4, gain_db=-7.0, tilt=-1.0, breath=1.0,
                       drive=0.0),
    "neutral": Prosody(pitch=0, pitch_range=0, rate=1.0, word_gap=0, gain_db=0.0, tilt=0.0, breath=0.15, drive=0.0),
}
# How the utterances that are not blends are dominated (IEMOCAP-like imbalance); blends pick their
# three classes with these shares too.
DOMINANT_SHARE = {"anger": 0.22, "happiness": 0.28, "sadness": 0.18, "neutral": 0.32}
AROUSED = ("anger", "happiness")  # the more of these, the likelier a sentence ends in "!"


def target_classes() -> tuple[str, ...]:
    """The configured classes (`DataConfig.classes`), each of which must have a prosody."""
    classes = tuple(DataConfig().classes)
    missing = [c for c in classes if c not in EMOTION_PROSODY]
    if missing:
        raise ConfigError(f"the synthetic corpus renders only {list(EMOTION_PROSODY)}; no prosody for {missing}")
    return classes


def true_distribution(rng: np.random.Generator, kind: str, classes: tuple[str, ...]) -> np.ndarray:
    """Peaked on the dominant class `kind` (0.8-0.97), or for a "blend" a near-even blend of three
    classes picked with the class shares plus a little of everything.

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


def blend_prosody(true: np.ndarray, classes: tuple[str, ...]) -> Prosody:
    """The classes' prosody targets weighted by the true distribution."""
    return Prosody(**{
        f.name: float(sum(p * getattr(EMOTION_PROSODY[c], f.name) for p, c in zip(true, classes)))
        for f in fields(Prosody)
    })


def arousal(true: np.ndarray, classes: tuple[str, ...]) -> float:
    return sum(p for p, c in zip(true, classes) if c in AROUSED)
