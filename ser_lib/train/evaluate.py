"""A model's utterance-level predictions on a list of segments, and their metrics (§V-A).

Segments are batched by length; an utterance's prediction is the mean of its segments'
class probabilities (`samples.aggregate_by_utterance`), and so is its embedding (for t-SNE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.metrics import classification_metrics
from ..config import Config
from ..data.batching import make_loader
from ..data.samples import Sample, aggregate_by_utterance
from ..runtime import autocast, to_device


@dataclass
class Predictions:
    """Per-utterance outputs: segment probabilities averaged per utterance."""

    utt_ids: list[str]
    probs: np.ndarray  # [N, K]
    embeddings: np.ndarray  # [N, D], averaged like the probabilities
    y_soft: np.ndarray  # [N, K] the utterances' labels (one-hot for clear)
    true: np.ndarray | None  # [N, K] known true distributions (synthetic corpora)

    @property
    def labels(self) -> np.ndarray:
        """Class index of each utterance's label (its consensus class on clear samples)."""
        return self.y_soft.argmax(axis=1)


@torch.no_grad()
def predict(model: torch.nn.Module, samples: list[Sample], config: Config, device: torch.device) -> Predictions:
    model.eval()
    loader = make_loader(samples, config.train.batch_size, shuffle=False, seed=0,
                         bucket_by_length=config.train.bucket_by_length, num_workers=0)
    sample_ids, probs, embeddings = [], [], []
    for batch in loader:
        with autocast(device, config.runtime.precision):
            out = model(to_device(batch, device))
        probs.append(torch.softmax(out["logits"].float(), dim=-1).cpu())
        embeddings.append(out["embedding"].float().cpu())
        sample_ids += batch["utt_ids"]
    by_segment = {s.utt_id: s for s in samples}
    utt_ids, mean_probs = aggregate_by_utterance(sample_ids, torch.cat(probs))
    _, mean_embeddings = aggregate_by_utterance(sample_ids, torch.cat(embeddings))
    truths = [by_segment[u].true for u in utt_ids]
    return Predictions(
        utt_ids=list(utt_ids),
        probs=mean_probs.numpy(),
        embeddings=mean_embeddings.numpy(),
        y_soft=torch.stack([by_segment[u].y_soft for u in utt_ids]).numpy(),
        true=None if any(t is None for t in truths) else torch.stack(truths).numpy(),
    )


def evaluate(model, samples: list[Sample], config: Config, device, classes) -> dict:
    """WA/UA and friends on clear samples, utterance level."""
    result = predict(model, samples, config, device)
    return classification_metrics(result.labels, result.probs.argmax(axis=1), classes)
