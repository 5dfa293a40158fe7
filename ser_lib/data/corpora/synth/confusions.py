"""Each synthetic annotator's true confusion matrix: what Dawid-Skene estimates, known here exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ....config import SynthConfig
from .annotators import Annotator, annotator_id, perception, session_pool
from .emotions import target_classes
from .plan import SESSIONS, plan_corpus, session_name
from .utterance import Utterance


def annotator_confusions(
    seed: int = SynthConfig.seed,
    size: str = SynthConfig.size,
    per_speaker: int | None = None,
    annotator_temperature: float = SynthConfig.annotator_temperature,
    annotator_confusion: float = SynthConfig.annotator_confusion,
) -> dict[str, pd.DataFrame]:
    """Each annotator's true confusion matrix in the corpus `plan_corpus` plans with these arguments:
    P(label given | true class), keyed by annotator id as in `annotations_frame` (``Ses01-A3``).

    What Dawid-Skene estimates (crowd-kit's ``errors_``, transposed). Rows (index ``true``): an
    utterance's true class, the argmax of its true distribution; columns (``label``): the label
    given, over the target classes only and renormalised, as label aggregation leaves ``other``
    out (`ser_lib.method.aggregation`). Each row sums to 1; a class that is never the argmax in the
    annotator's session has a row of NaN. A matrix's ``attrs`` name the annotator's parameters:
    ``temperature`` and ``confused``, its (heard, heard as) pair of classes (None without confusion).

    Analytical, not counted: the annotator's vote on an utterance is drawn from what it perceives
    (`annotators.perception`: the rule the votes are drawn with), and panels are drawn regardless of
    the utterance, so the row of class k is that perception averaged over all the session's
    utterances whose true argmax is k. The matrix counted from the planned votes scatters around it
    (a `small` corpus gives an annotator ~35 labels).
    """
    classes = target_classes()
    utterances = plan_corpus(seed, size, per_speaker, annotator_temperature, annotator_confusion)
    matrices = {}
    for session_ix in range(SESSIONS):
        session = session_name(session_ix)
        in_session = [u for u in utterances if u.session == session]
        pool = session_pool(seed, session_ix, len(classes), max_temperature=annotator_temperature,
                            confusion=annotator_confusion)
        for a, annotator in enumerate(pool):
            matrices[annotator_id(session, a)] = _confusion_matrix(annotator, in_session, classes)
    return matrices


def _confusion_matrix(annotator: Annotator, utterances: list[Utterance], classes: tuple[str, ...]) -> pd.DataFrame:
    truth = np.array([int(np.argmax(u.true)) for u in utterances])
    # Target-class part of each perception: rows sum to the chance of a target label.
    heard = np.array([perception(annotator, u.true, u.outside)[:-1] for u in utterances])
    counts = np.array([heard[truth == k].sum(axis=0) for k in range(len(classes))])
    with np.errstate(invalid="ignore"):  # a class absent from the session: NaN row
        matrix = counts / counts.sum(axis=1, keepdims=True)
    frame = pd.DataFrame(matrix, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="label"))
    frame.attrs = {"temperature": annotator.temperature,
                   "confused": tuple(classes[k] for k in annotator.confusion) if annotator.confusion_share else None}
    return frame
