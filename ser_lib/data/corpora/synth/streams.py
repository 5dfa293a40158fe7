"""Random streams: every draw of the synthetic corpora comes from a generator of its own, seeded
by ``(seed, stream, index)``.

A draw therefore depends on what it is for, never on what was drawn before it: the files are the
same for any number of worker processes, and a new kind of draw (its own stream) leaves every
other one unchanged. The stream numbers are part of every seed: renumbering one changes the corpora.
"""

from __future__ import annotations

import enum

import numpy as np


class Stream(enum.IntEnum):
    """What a generator's draws are for, and what its index counts."""

    PLAN = 0  # a labelled utterance's labels, text and prosody (index: utterance)
    SPEAKER = 1  # a labelled speaker's baseline voice (index: speaker)
    QUOTA = 2  # a labelled speaker's utterance kinds and duration tiers (index: speaker)
    SESSION = 3  # a session's annotator pool (index: session)
    RENDER = 4  # noise added while rendering (seed: the utterance's own; index: utterance)
    CONFUSION = 5  # the confusion pair of each annotator of a session's pool (index: session)
    UNLABELLED_PLAN = 100  # an unlabelled utterance's text and prosody (index: utterance)
    UNLABELLED_SPEAKER = 101  # an unlabelled speaker's baseline voice (index: speaker)
    # The same for unlabelled speech rendered by Flite: its own texts, so that a mix of the two
    # corpora does not say the same sentences twice.
    FLITE_PLAN = 102
    FLITE_SPEAKER = 103


def generator(seed: int, stream: Stream, index: int) -> np.random.Generator:
    """The generator of item `index` of `stream` in the corpus of `seed`."""
    return np.random.default_rng([seed, int(stream), index])
