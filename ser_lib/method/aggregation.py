"""Soft labels from annotator-level labels by classic label aggregation (crowd-kit).

The paper corrects an ambiguous sample's vote proportions y_s with the model's prediction (eq. 6).
Statistics has answered "what is the true label distribution behind disagreeing annotators"
since Dawid and Skene (1979): estimate each annotator's confusion matrix and the posterior of
every item's class by EM. These targets (`data.train_targets`) replace y_s of the ambiguous
training samples with such a posterior, restricted to the target classes and renormalised like
eq. 5:

- "dawid-skene": `crowdkit.aggregation.DawidSkene` (Dawid & Skene, 1979);
- "mace": `crowdkit.aggregation.MACE` (Hovy et al., NAACL 2013), which models each annotator as
  sometimes spamming and sometimes competent.

The aggregation is fitted on the training speakers' utterances of each fold only (dropped ones
included: their labels still tell how each annotator labels), so nothing of the validation or
test speakers leaks into the labels. Labels outside the target classes are left out, as eq. 5
leaves the ``other`` votes out of y_s. Kept as a latent class, ``other`` made Dawid-Skene degenerate
on the synthetic corpus: with 6 annotators of ~50 utterances each per session, EM explained
neutral-heavy utterances as "other" heard as neutral (18 of 250 posteriors put all their mass on
"other"). Clear samples keep their one-hot consensus label, as in
the paper: the aggregated posterior of a clear sample is near one-hot anyway, and the partition
into S_A and S_B stays the votes' (eq. 1). Both models are fitted deterministically (Dawid-Skene
starts from majority vote; MACE with a fixed `random_state`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import torch

from ..data.labels import AMBIGUOUS
from ..data.samples import Sample
from ..errors import ConfigError

AGGREGATORS = ("dawid-skene", "mace")


def aggregated_soft_labels(annotations: pd.DataFrame, utt_ids: set[str], classes: tuple[str, ...],
                           method: str) -> dict[str, np.ndarray]:
    """utt_id -> soft label over `classes` from the posterior `method` fits on the labels of
    `utt_ids` (only those rows of `annotations` are seen)."""
    rows = annotations[annotations["utt_id"].isin(utt_ids) & annotations["label"].isin(classes)]
    if rows.empty:
        raise ConfigError(f"label aggregation ({method}): no annotator labels of the classes {list(classes)} "
                          "for the training utterances")
    data = pd.DataFrame({"task": rows["utt_id"], "worker": rows["annotator"], "label": rows["label"]})
    with warnings.catch_warnings():  # crowd-kit 1.4 calls pandas APIs that pandas 3 deprecates
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        posterior = _model(method).fit_predict_proba(data.drop_duplicates())
    target = posterior.reindex(columns=list(classes), fill_value=0.0).to_numpy(dtype=float)
    return {utt: p / p.sum() for utt, p in zip(posterior.index, target)}


def with_aggregated_labels(samples: list[Sample], soft: dict[str, np.ndarray]) -> list[Sample]:
    """The ambiguous samples' y_s replaced by their aggregated soft label (clear ones unchanged)."""
    def relabel(sample: Sample) -> Sample:
        label = soft.get(sample.utt_id)
        if sample.subset != AMBIGUOUS or label is None:
            return sample
        return dataclasses.replace(sample, y_soft=torch.as_tensor(label, dtype=sample.y_soft.dtype))
    return [relabel(s) for s in samples]


def _model(method: str):
    from crowdkit.aggregation import MACE, DawidSkene  # imported here: only these methods need it

    if method == "dawid-skene":
        return DawidSkene(n_iter=100)
    if method == "mace":
        return MACE(random_state=0)
    raise ConfigError(f"label aggregation must be one of {AGGREGATORS}, got {method!r}")
