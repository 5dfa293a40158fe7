"""Training targets of a method (`data.train_targets`): which samples train, with which label.

- "soft" (the paper): clear samples with their one-hot consensus label (eq. 1), ambiguous ones
  with their soft label of vote proportions (eq. 5);
- "clear_only" (common SER practice): the clear samples alone;
- "plurality": every sample, an ambiguous one with the one-hot label of its most-voted class
  (a tie goes to the class listed first in data.classes);
- "dawid-skene", "mace": every sample, an ambiguous one with the soft label a label aggregation
  model infers from who gave which label (`method.aggregation`, applied by `train.fold_data.prepare_fold`,
  which knows the fold's annotator labels).

Validation and test sets are never changed: they are clear samples with consensus labels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import TRAIN_TARGETS
from ..data.labels import AMBIGUOUS, CLEAR
from ..data.samples import Sample
from .aggregation import AGGREGATORS
from ..errors import ConfigError


def training_targets(samples: list[Sample], rule: str) -> list[Sample]:
    """`samples` as the rule trains on them (new Sample objects where a label changes)."""
    if rule in ("soft", *AGGREGATORS):  # the aggregated labels need the fold's annotations: prepare_fold
        return samples
    if rule == "clear_only":
        return [s for s in samples if s.subset == CLEAR]
    if rule == "plurality":
        return [plurality_sample(s) if s.subset == AMBIGUOUS else s for s in samples]
    raise ConfigError(f"data.train_targets must be one of {TRAIN_TARGETS}, got {rule!r}")


def plurality_sample(sample: Sample) -> Sample:
    """The sample with the one-hot label of its most-voted class (the first on a tie)."""
    hard = torch.zeros_like(sample.y_soft)
    hard[int(np.argmax(sample.y_soft.numpy()))] = 1.0
    return dataclasses.replace(sample, y_soft=hard)
