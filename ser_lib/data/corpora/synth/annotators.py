"""Simulated annotators: per-session pools as in IEMOCAP, and how a panel of them votes.

Each annotator has a class bias, a temperature (how noisy its votes are) and optionally a
confusion: one class it hears, in part, as another. `perception` is what it perceives of an
utterance, the distribution its vote is drawn from; `annotate` draws a panel's votes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .streams import Stream, generator

ANNOTATORS_PER_SESSION = 6
ANNOTATORS_PER_UTTERANCE = ((3, 0.4), (4, 0.4), (5, 0.2))  # (count, probability)


@dataclass(frozen=True)
class Annotator:
    bias: np.ndarray  # [K] multiplicative class preference
    temperature: float  # >= 1: flattens what the annotator perceives, i.e. noisier votes
    other_rate: float  # chance of perceiving an emotion outside the target classes
    # (class heard, class it is heard as) and the share moved (synth.annotator_confusion); none by default.
    confusion: tuple[int, int] = (0, 0)
    confusion_share: float = 0.0


def annotator_id(session: str, position: int) -> str:
    """How `annotations.csv` names the annotator at `position` of the session's pool: ``Ses01-A3``."""
    return f"{session}-A{position + 1}"


def session_pool(seed: int, session_ix: int, num_classes: int, *, max_temperature: float,
                 confusion: float) -> list[Annotator]:
    """The session's annotators: temperatures uniform in [1, `max_temperature`], and each hearing
    one class as another by the share `confusion`."""
    pool = _annotator_pool(seed, session_ix, num_classes, max_temperature)
    return _with_confusions(pool, seed, session_ix, confusion)


def _annotator_pool(seed: int, session_ix: int, num_classes: int, max_temperature: float) -> list[Annotator]:
    rng = generator(seed, Stream.SESSION, session_ix)
    return [
        Annotator(
            bias=np.exp(rng.normal(0.0, 0.15, num_classes)),
            temperature=float(rng.uniform(1.0, max_temperature)),
            other_rate=float(rng.uniform(0.01, 0.04)),
        )
        for _ in range(ANNOTATORS_PER_SESSION)
    ]


def _with_confusions(pool: list[Annotator], seed: int, session_ix: int, share: float) -> list[Annotator]:
    """The pool with a confusion per annotator: a (heard, heard as) pair of distinct classes from
    a random stream of its own, so that `share` = 0 draws nothing and changes nothing."""
    if share == 0.0:
        return pool
    rng = generator(seed, Stream.CONFUSION, session_ix)
    pairs = [tuple(int(c) for c in rng.choice(len(a.bias), size=2, replace=False)) for a in pool]
    return [dataclasses.replace(a, confusion=pair, confusion_share=share) for a, pair in zip(pool, pairs)]


def annotate(rng: np.random.Generator, true: np.ndarray, pool: list[Annotator],
             outside: float) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """Votes ``[K + 1]`` (target classes, then other) of 3-5 annotators from the pool, and who
    gave each: (pool index, class index) pairs, K meaning other.

    The panel votes by stratified sampling: annotator i reads its own cumulative perception
    (classes from most to least likely, other last) at (π(i) + U_i) / n for a random permutation
    π. Each vote still follows its annotator's perception, but the panel's counts track the
    perceptions closely instead of scattering as independent draws would, which keeps the share
    of ambiguous utterances stable across seeds and sizes.
    """
    counts, probabilities = zip(*ANNOTATORS_PER_UTTERANCE)
    n = int(rng.choice(counts, p=probabilities))
    panel = rng.choice(len(pool), size=n, replace=False)
    order = np.append(np.argsort(-true, kind="stable"), len(true))
    positions = (rng.permutation(n) + rng.uniform(size=n)) / n
    votes = np.zeros(len(true) + 1, dtype=int)
    annotations = []
    for a, u in zip(panel, positions):
        cumulative = np.cumsum(perception(pool[a], true, outside)[order])
        slot = min(int(np.searchsorted(cumulative, u * cumulative[-1], side="right")), len(order) - 1)
        votes[order[slot]] += 1
        annotations.append((int(a), int(order[slot])))
    return votes, tuple(annotations)


def perception(annotator: Annotator, true: np.ndarray, outside: float) -> np.ndarray:
    """What `annotator` perceives of an utterance, ``[K + 1]`` (target classes, then other).

    q ∝ true^(1/T) · bias, with the confused share of one class moved to another; and with its
    `other_rate`, raised by the utterance's `outside` emotion share, an emotion outside the targets.
    """
    q = np.power(true, 1.0 / annotator.temperature) * annotator.bias
    if annotator.confusion_share:  # hears `heard` as `heard_as` that often
        heard, heard_as = annotator.confusion
        moved = annotator.confusion_share * q[heard]
        q = q.copy()
        q[heard] -= moved
        q[heard_as] += moved
    other = 1 - (1 - annotator.other_rate) * (1 - outside)
    return np.append((1 - other) * q / q.sum(), other)
