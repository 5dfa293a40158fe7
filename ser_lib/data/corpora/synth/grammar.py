"""Texts: random English sentences from a small grammar.

A text is a prefix of a long run of clauses (`word_sequence`), so the renderer can lengthen or
shorten it word by word until the speech fits its duration. Each corpus has its own words: the
pretraining speech shares no content word with the labelled corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Vocabulary:
    """The words of the sentence grammar."""

    subjects: tuple[str, ...]
    verbs: tuple[str, ...]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    places: tuple[str, ...]
    joins: tuple[str, ...] = ("and", "but", "so", "then", "because")
    openers: tuple[str, ...] = ("well", "oh", "look", "honestly", "okay", "listen", "really")


EVALUATION_VOCABULARY = Vocabulary(  # the labelled corpus
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

PRETRAINING_VOCABULARY = Vocabulary(  # the unlabelled speech: no content word in common with the above
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


def word_sequence(rng: np.random.Generator, vocabulary: Vocabulary = EVALUATION_VOCABULARY,
                  length: int = 60) -> tuple[str, ...]:
    """At least `length` words: an optional opener, then clauses joined by conjunctions."""
    words = [_pick(rng, vocabulary.openers) + ","] if rng.random() < 0.4 else []
    words += _clause(rng, vocabulary)
    while len(words) < length:
        words[-1] += ","
        words += [_pick(rng, vocabulary.joins), *_clause(rng, vocabulary)]
    words[0] = words[0][0].upper() + words[0][1:]
    return tuple(words)


def sentence(words: tuple[str, ...], n_words: int, ending: str) -> str:
    """The first `n_words` of `words` as a sentence ending in `ending` ("." "!" or "?")."""
    return " ".join(words[:n_words]).rstrip(",") + ending


def _clause(rng: np.random.Generator, vocabulary: Vocabulary) -> list[str]:
    words = [*_pick(rng, vocabulary.subjects).split(), _pick(rng, vocabulary.verbs), "the"]
    if rng.random() < 0.6:
        words.append(_pick(rng, vocabulary.adjectives))
    words.append(_pick(rng, vocabulary.nouns))
    if rng.random() < 0.7:
        words += _pick(rng, vocabulary.places).split()
    return words


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]
