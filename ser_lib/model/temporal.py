"""The temporal branch (§IV-B, eqs. 24-28): raw waveform → Wav2Vec2 → attention pooling → F_t.

Fine-tuned (the paper), the encoder's last hidden states are pooled and the encoder trains with
the rest. Frozen (`model.encoder_mode=frozen`, SUPERB's protocol), the encoder stays fixed, the
hidden states of all its layers are computed once per segment (`TemporalBranch.layer_states`,
cached by `train.frozen`), and the branch learns a softmax-weighted sum of them
(`LayerWeightedSum`) before the same attention pooling.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
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


def frame_lengths(config: Wav2Vec2Config, sample_lengths: torch.Tensor, adapter: bool = False) -> torch.Tensor:
    """Frames the conv feature encoder makes of each length in samples (unpadded convolutions:
    floor((L - kernel) / stride) + 1 per layer; 50 frames/s for wav2vec2 at 16 kHz). With
    `adapter`, then the frames left after the encoder's adapter (`config.add_adapter`): each of its
    layers strides by `adapter_stride` with padding, floor((L - 1) / stride) + 1.

    What transformers' private `Wav2Vec2Model._get_feat_extract_output_lengths` computes
    (tests/test_model.py compares them)."""
    lengths = torch.as_tensor(sample_lengths).long()
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    if adapter:
        for _ in range(config.num_adapter_layers):
            lengths = torch.div(lengths - 1, config.adapter_stride, rounding_mode="floor") + 1
    return lengths


def frame_mask(config: Wav2Vec2Config, sample_mask: torch.Tensor, num_frames: int,
               adapter: bool = False) -> torch.Tensor:
    """[B, num_frames] bool, True on each row's valid encoder frames: the first
    `frame_lengths(valid samples)` of them (`sample_mask` [B, samples], valid samples first).

    What transformers' private `Wav2Vec2Model._get_feature_vector_attention_mask` computes for rows
    of at least one frame (tests/test_model.py compares them); for a row shorter than one frame it
    would unmask the whole row, here none (`TemporalBranch` pads such rows to one frame)."""
    return time_mask(frame_lengths(config, sample_mask.sum(-1), adapter), num_frames)


class LayerWeightedSum(nn.Module):
    """SUPERB's featurizer: Σ_l softmax(w)_l · h_l over an encoder's L + 1 hidden states,
    [B, T, L+1, H] -> [B, T, H]. The weights start equal (zeros before the softmax). With
    `layer_norm`, each layer is first normalised over H without parameters; padded frames (all
    zero) stay zero."""

    def __init__(self, num_layers: int, layer_norm: bool = True):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.layer_norm = layer_norm

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.shape[2] != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} layers of hidden states, got {hidden.shape[2]}")
        if self.layer_norm:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        return torch.einsum("btlh,l->bth", hidden, self.weights.softmax(0).to(hidden.dtype))


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

    Frozen encoder (`frozen=True`, `model.encoder_mode=frozen`): the encoder's weights never train
    and it always runs in eval mode. `forward` then takes `hidden_states` [B, T, L+1, H] with
    `hidden_lengths` [B] (each segment's `layer_states`, zero-padded) and pools their learned
    weighted sum; without them it computes `layer_states` of each segment itself, so a saved
    model still predicts from audio.
    """

    def __init__(self, encoder: Wav2Vec2Model, frozen: bool = False, layer_norm: bool = True):
        super().__init__()
        self.encoder = encoder
        self.frozen = frozen
        self.layers = None
        if frozen:
            if encoder.config.add_adapter:
                raise ValueError("a frozen encoder's layers are weighted frame by frame; encoders with an adapter "
                                 "change the frame rate after the last layer and are not supported")
            encoder.requires_grad_(False)
            self.layers = LayerWeightedSum(encoder.config.num_hidden_layers + 1, layer_norm)
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

    def train(self, mode: bool = True) -> "TemporalBranch":
        super().train(mode)
        if self.frozen:  # a frozen encoder never drops out or masks
            self.encoder.eval()
        return self

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor,
                front_end_features: torch.Tensor | None = None, hidden_states: torch.Tensor | None = None,
                hidden_lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.pooling(*self.frames(waveform, lengths, front_end_features, hidden_states, hidden_lengths))

    def frames(self, waveform: torch.Tensor, lengths: torch.Tensor,
               front_end_features: torch.Tensor | None = None, hidden_states: torch.Tensor | None = None,
               hidden_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames before pooling [B, T, H] and their valid-frame mask [B, T]: the encoder's last
        hidden states, or a frozen encoder's weighted sum of layers."""
        if waveform.ndim != 2:
            raise ValueError(f"waveform must be [B, samples], got {tuple(waveform.shape)}")
        if self.frozen:
            if hidden_states is None:
                hidden_states, hidden_lengths = self._batch_layer_states(waveform, lengths)
            hidden_lengths = check_lengths(hidden_lengths, hidden_states.shape[1], "hidden_lengths",
                                           hidden_states.device)
            return self.layers(hidden_states), time_mask(hidden_lengths, hidden_states.shape[1])
        sample_mask = self._sample_mask(waveform, lengths)
        if front_end_features is None:
            x = normalize_waveform(waveform, sample_mask)
            hidden = self.encoder(x, attention_mask=sample_mask if self.uses_attention_mask else None).last_hidden_state
        else:
            hidden = self._encode_front_end(front_end_features, sample_mask)
        return hidden, frame_mask(self.encoder.config, sample_mask, hidden.shape[1],
                                  adapter=bool(self.encoder.config.add_adapter))

    def _sample_mask(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # An item shorter than one encoder frame (25 ms) is read with enough of its zero
        # padding to make one frame; it would otherwise have no valid frame to pool.
        lengths = check_lengths(lengths, waveform.shape[1], "waveform_lengths", waveform.device)
        lengths = lengths.clamp(min=min(self.min_samples, waveform.shape[1]))
        return time_mask(lengths, waveform.shape[1]).long()

    @torch.no_grad()
    def layer_states(self, waveform: torch.Tensor) -> torch.Tensor:
        """The hidden states of every layer of one segment [samples] as fed, [frames, L+1, H] in
        float32: the input to the first transformer layer, then each layer's output, the last as
        the encoder returns it (after a pre-norm encoder's final layer norm). Computed on the segment
        alone, in eval mode, so they do not depend on what else is in a batch."""
        was_training = self.encoder.training
        self.encoder.eval()
        device = next(self.encoder.parameters()).device
        x = waveform.reshape(1, -1).float().to(device)
        mask = self._sample_mask(x, torch.tensor([x.shape[1]], device=device))
        out = self.encoder(normalize_waveform(x, mask), attention_mask=mask if self.uses_attention_mask else None,
                           output_hidden_states=True)
        self.encoder.train(was_training)
        # transformers returns each layer's input and the last layer's output before the final
        # layer norm of pre-norm encoders; the last state is taken as the encoder's own output.
        states = (*out.hidden_states[:-1], out.last_hidden_state)
        return torch.stack(states, dim=2)[0].float().cpu()

    def _batch_layer_states(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`layer_states` of each item of a padded batch, zero-padded, with their frame counts."""
        lengths = check_lengths(lengths, waveform.shape[1], "waveform_lengths", waveform.device).tolist()
        states = [self.layer_states(row[:n]) for row, n in zip(waveform, lengths)]
        padded = pad_sequence(states, batch_first=True).to(waveform.device)
        return padded, torch.tensor([len(s) for s in states], device=waveform.device)

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
            frames = frame_lengths(self.encoder.config, mask.sum(1)).tolist()
            for row, i in enumerate(chunk):
                features[i] = out[row, : frames[row]].clone()
        return features

    def _encode_front_end(self, features: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
        """`Wav2Vec2Model.forward` after its feature extractor (transformers 5): projection,
        SpecAugment time masking in training, the transformer layers.

        The masking is transformers' private `_mask_hidden_states`, as `forward` calls it, so both
        paths draw the same masks from numpy's RNG; pyproject.toml bounds transformers below 6 and
        tests/test_model.py checks this path against `forward` in training."""
        encoder = self.encoder
        attention_mask = None
        if self.uses_attention_mask:
            attention_mask = frame_mask(encoder.config, sample_mask, features.shape[1])
        hidden, _ = encoder.feature_projection(features)
        hidden = encoder._mask_hidden_states(hidden, attention_mask=attention_mask)
        hidden = encoder.encoder(hidden, attention_mask=attention_mask).last_hidden_state
        return hidden if encoder.adapter is None else encoder.adapter(hidden)
