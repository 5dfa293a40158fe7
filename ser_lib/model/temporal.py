"""The temporal branch (§IV-B, eqs. 24-28): raw waveform → Wav2Vec2 → attention pooling → F_t."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import Wav2Vec2Config, Wav2Vec2Model

from .masks import check_lengths, time_mask


def normalize_waveform(waveform: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per utterance over its valid samples; padding stays 0.

    This is what `Wav2Vec2FeatureExtractor(do_normalize=True)` does before the pretrained
    checkpoints, computed here in float32 so the model takes raw segments.
    """
    x = waveform.float()
    weight = mask.to(x.dtype)
    count = weight.sum(1, keepdim=True).clamp_min(1.0)
    mean = (x * weight).sum(1, keepdim=True) / count
    var = ((x - mean).square() * weight).sum(1, keepdim=True) / count
    return (x - mean) / torch.sqrt(var + 1e-7) * weight


def receptive_field(config: Wav2Vec2Config) -> int:
    """Samples the conv feature encoder needs for one output frame (400 for wav2vec2)."""
    size = 1
    for kernel, stride in zip(reversed(config.conv_kernel), reversed(config.conv_stride)):
        size = (size - 1) * stride + kernel
    return size


class AttentionPooling(nn.Module):
    """F_t = softmax(F_2 w + b)^T F_2 over valid frames (eqs. 27-28): [B, T, H] -> [B, H]."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(hidden).squeeze(-1).float()
        # The float32 minimum (not -inf) keeps a fully masked row finite; exp() of it is 0,
        # so padded frames get exactly zero weight.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        return torch.einsum("bt,bth->bh", weights.to(hidden.dtype), hidden)


class TemporalBranch(nn.Module):
    """Raw waveform [B, samples] -> F_t [B, hidden]: Wav2Vec2, then attention pooling.

    The encoder's own SpecAugment time masking (config.mask_time_prob) acts in train mode
    only. Its mask positions are drawn with numpy's global RNG (Hugging Face's
    `_compute_mask_indices`), so seed numpy too for reproducible training.

    Padding: encoders with layer-normalised feature extractors get the attention mask, so
    padded items are exact. Group-norm encoders (wav2vec2-base, -base-960h) were trained
    without one and Hugging Face advises passing none (Wav2Vec2FeatureExtractor docs):
    they get zero-padded input and no mask, as in their training, and their valid frames
    then depend slightly on the padding. Pooling ignores padded frames in both cases.

    Frozen front end (`model.freeze_feature_encoder`, as Hugging Face's fine-tuning recipes do):
    the convolutional feature encoder's output then never changes, so `front_end` computes it
    once per segment and `forward` takes it instead of recomputing it every epoch
    (`front_end_features`, [B, frames, channels], zero-padded). It is computed on each segment
    alone, which equals the batched result for layer-norm encoders; for group-norm encoders it
    is the result without batch padding.
    """

    def __init__(self, encoder: Wav2Vec2Model):
        super().__init__()
        self.encoder = encoder
        self.pooling = AttentionPooling(encoder.config.hidden_size)
        self.output_dim = encoder.config.hidden_size
        self.uses_attention_mask = encoder.config.feat_extract_norm == "layer"
        self.min_samples = receptive_field(encoder.config)
        if not self.uses_attention_mask:
            warnings.warn(
                f"encoder {encoder.config.name_or_path or 'Wav2Vec2'} uses feat_extract_norm="
                f"{encoder.config.feat_extract_norm!r} and was trained without attention masks; as Hugging Face "
                "advises, it gets zero-padded batches without one, so padding slightly changes its outputs "
                "(pooling still ignores padded frames; train.bucket_by_length keeps padding small)",
                stacklevel=2,
            )

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor,
                front_end_features: torch.Tensor | None = None) -> torch.Tensor:
        return self.pooling(*self.frames(waveform, lengths, front_end_features))

    def frames(self, waveform: torch.Tensor, lengths: torch.Tensor,
               front_end_features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's last hidden states [B, T, H] and their valid-frame mask [B, T], before pooling."""
        if waveform.ndim != 2:
            raise ValueError(f"waveform must be [B, samples], got {tuple(waveform.shape)}")
        sample_mask = self._sample_mask(waveform, lengths)
        if front_end_features is None:
            x = normalize_waveform(waveform, sample_mask)
            hidden = self.encoder(x, attention_mask=sample_mask if self.uses_attention_mask else None).last_hidden_state
        else:
            hidden = self._encode_front_end(front_end_features, sample_mask)
        return hidden, self.encoder._get_feature_vector_attention_mask(hidden.shape[1], sample_mask)

    def _sample_mask(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # An item shorter than one encoder frame (25 ms) is read with enough of its zero
        # padding to make one frame; Hugging Face's mask helper would otherwise unmask the
        # whole row.
        lengths = check_lengths(lengths, waveform.shape[1], "waveform_lengths", waveform.device)
        lengths = lengths.clamp(min=min(self.min_samples, waveform.shape[1]))
        return time_mask(lengths, waveform.shape[1]).long()

    @torch.no_grad()
    def front_end(self, waveforms: Sequence[torch.Tensor], batch_size: int = 16) -> list[torch.Tensor]:
        """The convolutional features [frames, channels] of each segment [samples] as fed, as if
        computed alone. A layer-norm front end normalises each frame on its own, so its frames are
        exact in a zero-padded batch and segments go through in batches of similar lengths; a
        group-norm one normalises over time, so it sees one segment at a time."""
        device = next(self.parameters()).device
        order = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
        step = batch_size if self.uses_attention_mask else 1
        features: list[torch.Tensor] = [torch.empty(0)] * len(waveforms)
        for start in range(0, len(order), step):
            chunk = order[start:start + step]
            x = pad_sequence([waveforms[i] for i in chunk], batch_first=True).to(device)
            mask = self._sample_mask(x, torch.tensor([len(waveforms[i]) for i in chunk], device=device))
            out = self.encoder.feature_extractor(normalize_waveform(x, mask)).transpose(1, 2).float().cpu()
            frames = self.encoder._get_feat_extract_output_lengths(mask.sum(1)).tolist()
            for row, i in enumerate(chunk):
                features[i] = out[row, : frames[row]].clone()
        return features

    def _encode_front_end(self, features: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
        """`Wav2Vec2Model.forward` after its feature extractor (transformers 5): projection,
        SpecAugment time masking in training, the transformer layers."""
        encoder = self.encoder
        attention_mask = None
        if self.uses_attention_mask:
            attention_mask = encoder._get_feature_vector_attention_mask(features.shape[1], sample_mask,
                                                                        add_adapter=False)
        hidden, _ = encoder.feature_projection(features)
        hidden = encoder._mask_hidden_states(hidden, attention_mask=attention_mask)
        hidden = encoder.encoder(hidden, attention_mask=attention_mask).last_hidden_state
        return hidden if encoder.adapter is None else encoder.adapter(hidden)
