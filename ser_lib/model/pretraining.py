"""Self-supervised objectives for the temporal branch's Wav2Vec2 encoder (`ser pretrain`).

All three mask spans of the encoder's frames and learn from the masked frames only; the encoder
is the one the temporal branch fine-tunes (`Wav2Vec2Model`), fed the same normalised waveform
(`temporal.normalize_waveform`), so what it learns is what the branch starts from.

- `ClusterPrediction` ("hubert"): HuBERT's first iteration. Each frame's target is the k-means
  cluster of its log-mel filterbank frame, predicted from the masked input by cross-entropy on
  masked frames only (HuBERT's pred_masked_weight 1, pred_nomask_weight 0). HuBERT clusters
  MFCCs; we cluster the spatial branch's 40-bin log-mel frames, of which MFCCs are a linear
  transform (the DCT), and predict with a linear layer instead of HuBERT's cosine similarity to
  learned cluster embeddings.
- `FrameReconstruction` ("tera"): TERA's time-masked reconstruction: an L1 loss between the
  masked frames' filterbanks and a two-layer head's prediction.
- `Contrastive` ("wav2vec2"): wav2vec 2.0's contrastive loss against quantised targets plus its
  codebook diversity loss, from transformers' `Wav2Vec2ForPreTraining`, normalised per masked
  frame as transformers' pretraining example does.

With `pretrain.prosody_weight > 0`, "hubert" and "tera" also train prosody workers (PASE+'s
regression workers): a two-layer head regresses every valid frame's z-scored eGeMAPS descriptors
and voicing (`data.prosody`) from the same hidden states, by mean squared error, added to the loss
with that weight. PASE+ regresses from every frame, masked or not; so does this.

Each returns its loss and the diagnostics that reveal a collapse (`collapse_reasons`): wav2vec
2.0 is known to collapse on small data (its codebook perplexity falls toward a handful of entries
and the contrastive loss becomes trivial: transformers #14387, fairseq #4530, #3673).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining, Wav2Vec2Model
# Private helpers, kept: what they draw from numpy's global RNG is wav2vec 2.0's masking and
# sampling, and Wav2Vec2Model draws its own SpecAugment masks with the first. pyproject.toml bounds
# transformers below 6; tests/test_pretrain.py pins their output for a seed.
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from ..config import PretrainConfig
from .temporal import frame_lengths, normalize_waveform
from .temporal import frame_mask as valid_frames

# Collapse thresholds, on the last logged window of a run.
COLLAPSED_LOSS = 1e-3  # a loss this small means the task became trivial
MIN_USAGE_SHARE = 0.1  # clusters or codevectors in use, as a share of those available
MIN_FRAME_STD = 0.05  # hidden states that barely vary across frames carry no information


def span_mask(frame_mask: torch.Tensor, config: PretrainConfig) -> torch.Tensor:
    """wav2vec 2.0's span mask over valid frames ([B, T] bool), drawn with numpy's global RNG
    (seeded and checkpointed by the caller). At least two spans per row."""
    mask = _compute_mask_indices(tuple(frame_mask.shape), config.mask_prob, config.mask_length,
                                 attention_mask=frame_mask.long().cpu(), min_masks=2)
    return torch.from_numpy(mask).to(frame_mask.device) & frame_mask


class _Objective(nn.Module):
    """Common plumbing: the encoder, its input normalisation and frame masks."""

    encoder: Wav2Vec2Model
    workers: _ProsodyWorkers | None  # set by attach_workers (an instance attribute: nn.Module registers it)

    def attach_workers(self, config: PretrainConfig, prosody_dim: int) -> None:
        """PASE+'s prosody workers on the encoder's hidden states, when `pretrain.prosody_weight` > 0."""
        self.workers = _ProsodyWorkers(self.encoder.config.hidden_size, prosody_dim, config.prosody_weight) \
            if config.prosody_weight > 0 else None

    def with_worker_loss(self, loss: torch.Tensor, stats: dict, hidden: torch.Tensor, batch: dict,
                         frame_mask: torch.Tensor) -> torch.Tensor:
        """`loss` plus the workers' weighted MSE (their diagnostics go into `stats`); `loss` without workers."""
        if self.workers is None:
            return loss
        worker_loss, worker_stats = self.workers(hidden, batch["prosody"], frame_mask)
        stats.update(worker_stats)
        return loss + worker_loss

    def frame_mask(self, sample_mask: torch.Tensor) -> torch.Tensor:
        """[B, frames] bool: the valid frames of the conv feature encoder's output, where masks apply."""
        num_frames = int(frame_lengths(self.encoder.config, sample_mask.shape[1]))
        return valid_frames(self.encoder.config, sample_mask, num_frames)

    def inputs(self, waveform: torch.Tensor, sample_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The normalised waveform and the attention mask the temporal branch would pass (none for a
        group-norm front end, see `TemporalBranch`)."""
        use_mask = self.encoder.config.feat_extract_norm == "layer"
        return normalize_waveform(waveform, sample_mask), sample_mask.long() if use_mask else None

    def encode(self, waveform: torch.Tensor, sample_mask: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        x, attention_mask = self.inputs(waveform, sample_mask)
        return self.encoder(x, attention_mask=attention_mask, mask_time_indices=masked).last_hidden_state


def _frame_std(hidden: torch.Tensor, frame_mask: torch.Tensor) -> float:
    """Mean over channels of the hidden states' standard deviation across valid frames."""
    valid = hidden.detach().float()[frame_mask]
    return float(valid.std(dim=0).mean()) if len(valid) > 1 else 0.0


def _perplexity(probabilities: torch.Tensor) -> float:
    """exp(entropy) of the mean distribution over rows: how many classes are in use."""
    marginal = probabilities.detach().float().mean(dim=0)
    return float(torch.exp(-torch.xlogy(marginal, marginal).sum()))


class _PredictionHead(nn.Sequential):
    def __init__(self, hidden_size: int, out_size: int, depth: int):
        layers: list[nn.Module] = []
        if depth == 2:
            layers += [nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size)]
        super().__init__(*layers, nn.Linear(hidden_size, out_size))


class _ProsodyWorkers(nn.Module):
    """PASE+'s regression workers on prosody: MSE of a two-layer head's prediction of each valid
    frame's descriptors. Its baseline, the MSE of predicting each descriptor's mean, is about 1
    (the targets are z-scored), so a worker that learned nothing stays near 1."""

    def __init__(self, hidden_size: int, prosody_dim: int, weight: float):
        super().__init__()
        self.head = _PredictionHead(hidden_size, prosody_dim, depth=2)
        self.weight = weight

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor,
                frame_mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        targets = targets[:, : hidden.shape[1]][frame_mask]
        mse = F.mse_loss(self.head(hidden[frame_mask]).float(), targets)
        baseline = float(((targets - targets.mean(0)) ** 2).mean())
        return self.weight * mse, {"prosody_mse": mse.item(), "prosody_mean_mse": baseline}


class ClusterPrediction(_Objective):
    """HuBERT iteration 1: cross-entropy on the k-means cluster of each masked frame."""

    def __init__(self, encoder_config: Wav2Vec2Config, config: PretrainConfig, prosody_dim: int = 0):
        super().__init__()
        self.encoder = Wav2Vec2Model(encoder_config)
        self.head = _PredictionHead(encoder_config.hidden_size, config.num_clusters, depth=1)
        self.config = config
        self.attach_workers(config, prosody_dim)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        frame_mask = self.frame_mask(batch["sample_mask"])
        masked = span_mask(frame_mask, self.config)
        hidden = self.encode(batch["waveform"], batch["sample_mask"], masked)
        logits = self.head(hidden[masked]).float()
        targets = batch["clusters"][:, : hidden.shape[1]][masked]
        loss = F.cross_entropy(logits, targets)
        probabilities = logits.softmax(-1)
        stats = {"accuracy": float((logits.argmax(-1) == targets).float().mean()),
                 "prediction_perplexity": _perplexity(probabilities),
                 "target_perplexity": _perplexity(F.one_hot(targets, self.config.num_clusters).float()),
                 "frame_std": _frame_std(hidden, frame_mask), "masked_share": float(masked.sum() / frame_mask.sum())}
        return self.with_worker_loss(loss, stats, hidden, batch, frame_mask), stats


class FrameReconstruction(_Objective):
    """TERA's time alteration: L1 reconstruction of the masked frames' filterbanks."""

    def __init__(self, encoder_config: Wav2Vec2Config, config: PretrainConfig, target_dim: int, prosody_dim: int = 0):
        super().__init__()
        self.encoder = Wav2Vec2Model(encoder_config)
        self.head = _PredictionHead(encoder_config.hidden_size, target_dim, depth=2)
        self.config = config
        self.attach_workers(config, prosody_dim)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        frame_mask = self.frame_mask(batch["sample_mask"])
        masked = span_mask(frame_mask, self.config)
        hidden = self.encode(batch["waveform"], batch["sample_mask"], masked)
        targets = batch["frames"][:, : hidden.shape[1]][masked]
        loss = F.l1_loss(self.head(hidden[masked]).float(), targets)
        # A predictor that outputs the mean frame scores this; learning means going below it.
        baseline = float((targets - targets.mean(0)).abs().mean())
        stats = {"reconstruction_l1": loss.item(), "mean_frame_l1": baseline,
                 "frame_std": _frame_std(hidden, frame_mask), "masked_share": float(masked.sum() / frame_mask.sum())}
        return self.with_worker_loss(loss, stats, hidden, batch, frame_mask), stats


class Contrastive(_Objective):
    """wav2vec 2.0: contrastive loss against quantised targets and the diversity loss
    (transformers' `Wav2Vec2ForPreTraining`)."""

    def __init__(self, encoder_config: Wav2Vec2Config, config: PretrainConfig):
        super().__init__()
        encoder_config = Wav2Vec2Config.from_dict({
            **encoder_config.to_dict(), "num_codevector_groups": config.codevector_groups,
            "num_codevectors_per_group": config.codevectors_per_group,
            "codevector_dim": 32 * config.codevector_groups, "proj_codevector_dim": encoder_config.hidden_size,
            "num_negatives": config.num_negatives, "diversity_loss_weight": config.diversity_weight,
            "feat_quantizer_dropout": 0.0})
        self.model = Wav2Vec2ForPreTraining(encoder_config)
        self.encoder = self.model.wav2vec2
        self.config = config

    def set_progress(self, fraction: float) -> None:
        """Anneal the Gumbel temperature from its max to its min over the run (geometrically)."""
        high, low = self.config.gumbel_temperature
        self.model.set_gumbel_temperature(high * (low / high) ** min(max(fraction, 0.0), 1.0))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        sample_mask = batch["sample_mask"]
        frame_mask = self.frame_mask(sample_mask)
        masked = span_mask(frame_mask, self.config)
        negatives = _sample_negative_indices(tuple(masked.shape), self.config.num_negatives,
                                             mask_time_indices=masked.cpu().numpy())
        x, attention_mask = self.inputs(batch["waveform"], sample_mask)
        out = self.model(x, attention_mask=attention_mask, mask_time_indices=masked,
                         sampled_negative_indices=torch.from_numpy(negatives).long().to(masked.device),
                         output_hidden_states=True)
        # transformers sums both terms over the masked frames; per frame, as its pretraining example.
        count = masked.sum()
        contrastive, diversity = out.contrastive_loss / count, out.diversity_loss / count
        loss = contrastive + self.config.diversity_weight * diversity
        available = self.config.codevector_groups * self.config.codevectors_per_group
        stats = {"contrastive": contrastive.item(), "diversity": diversity.item(),
                 "codevector_perplexity": out.codevector_perplexity.item(), "codevectors": available,
                 "frame_std": _frame_std(out.hidden_states[-1], frame_mask),
                 "masked_share": float(count / frame_mask.sum())}
        return loss, stats


def build_objective(name: str, encoder_config: Wav2Vec2Config, config: PretrainConfig, target_dim: int,
                    prosody_dim: int = 0) -> _Objective:
    if name == "hubert":
        return ClusterPrediction(encoder_config, config, prosody_dim)
    if name == "tera":
        return FrameReconstruction(encoder_config, config, target_dim, prosody_dim)
    return Contrastive(encoder_config, config)


def collapse_reasons(history: list[dict], config: PretrainConfig) -> list[str]:
    """Why a run looks collapsed or learned nothing, from the mean of its last logged window
    (empty: neither).

    Collapse: a loss near 0 (the task became trivial); too few targets in use (HuBERT's predicted
    clusters, wav2vec 2.0's codevector perplexity, below `MIN_USAGE_SHARE` of those available);
    hidden states that hardly vary across frames (`MIN_FRAME_STD`). Nothing learned: wav2vec 2.0's
    contrastive loss still at chance, log(1 + distractors); TERA's reconstruction no better than
    predicting the mean frame; prosody workers no better than predicting each descriptor's mean.
    """
    if not history:
        return []
    window = history[-max(1, min(4, len(history) // 4)):]

    def mean(key: str) -> float:
        values = [row[key] for row in window if key in row and math.isfinite(row[key])]
        return float(np.mean(values)) if values else math.nan

    reasons = []
    if mean("loss") < COLLAPSED_LOSS:
        reasons.append(f"the loss fell to {mean('loss'):.2g}: the task became trivial")
    if config.objective == "hubert":
        used = mean("prediction_perplexity")
        if used < MIN_USAGE_SHARE * config.num_clusters:
            reasons.append(f"predictions use {used:.1f} of {config.num_clusters} clusters (perplexity)")
    if config.objective == "wav2vec2":
        used, available = mean("codevector_perplexity"), config.codevector_groups * config.codevectors_per_group
        if used < MIN_USAGE_SHARE * available:
            reasons.append(f"codevector perplexity {used:.1f} of {available} codevectors")
        chance = math.log(1 + config.num_negatives)
        if mean("contrastive") > 0.99 * chance:
            reasons.append(f"the contrastive loss {mean('contrastive'):.3f} is at chance (log {1 + config.num_negatives} "
                           f"= {chance:.3f}): nothing learned")
    if config.objective == "tera" and mean("reconstruction_l1") >= mean("mean_frame_l1"):
        reasons.append(f"the reconstruction L1 {mean('reconstruction_l1'):.3f} is no better than the mean frame's "
                       f"{mean('mean_frame_l1'):.3f}: nothing learned")
    if config.prosody_weight > 0 and mean("prosody_mse") >= mean("prosody_mean_mse"):
        reasons.append(f"the prosody workers' MSE {mean('prosody_mse'):.3f} is no better than predicting each "
                       f"descriptor's mean ({mean('prosody_mean_mse'):.3f}): nothing learned")
    if mean("frame_std") < MIN_FRAME_STD:
        reasons.append(f"hidden states vary little across frames (std {mean('frame_std'):.3g})")
    return reasons
