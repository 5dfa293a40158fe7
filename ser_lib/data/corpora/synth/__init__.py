"""The embedded synthetic corpora: IEMOCAP-shaped speech whose true emotion mix is known, and
unlabelled speech for pretraining.

The labelled corpus has 5 sessions x 2 speakers (one female, one male voice), speakers
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
``(seed, stream, index)`` (`streams`) and eSpeak's output is a pure function of its input (see
`espeak`), so a seed gives byte-identical files whatever the number of workers.

One concept per module, in the order a corpus is made:

- `streams`: the random streams every draw comes from;
- `grammar`: the sentence grammar and each corpus' vocabulary;
- `utterance`: an utterance's plan, shared by both corpora (speakers' baselines, prosody,
  durations, eSpeak parameters);
- `emotions`: a labelled utterance's true distribution and the prosody that renders it;
- `annotators`: annotator pools, their perception and a panel's votes;
- `plan`: the labelled corpus' sessions, speakers, quotas and utterances (`plan_corpus`);
- `confusions`: each annotator's true confusion matrix (`annotator_confusions`);
- `render`: one utterance's audio; `parallel`: a corpus' WAVs, in worker processes;
- `labelled`: the labelled corpus' files (`synthesize_corpus`);
- `unlabelled`: the pretraining speech (`synthesize_unlabelled`).
"""

from .annotators import ANNOTATORS_PER_SESSION, Annotator
from .confusions import annotator_confusions
from .emotions import EMOTION_PROSODY
from .grammar import EVALUATION_VOCABULARY, PRETRAINING_VOCABULARY, Vocabulary, word_sequence
from .labelled import annotations_frame, manifest_frame, synthesize_corpus
from .plan import SESSIONS, UTTERANCES_PER_SPEAKER, VOICES, plan_corpus
from .render import render_utterance
from .unlabelled import plan_unlabelled, synthesize_unlabelled
from .utterance import Prosody, Utterance

__all__ = [
    "ANNOTATORS_PER_SESSION", "Annotator", "annotator_confusions", "EMOTION_PROSODY", "EVALUATION_VOCABULARY",
    "PRETRAINING_VOCABULARY", "Vocabulary", "word_sequence", "annotations_frame", "manifest_frame",
    "synthesize_corpus", "SESSIONS", "UTTERANCES_PER_SPEAKER", "VOICES", "plan_corpus", "render_utterance",
    "plan_unlabelled", "synthesize_unlabelled", "Prosody", "Utterance",
]
