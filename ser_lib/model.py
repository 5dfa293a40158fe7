"""The spatial-temporal model (§IV) and its ablation variants (Table VII).

Two branches read the same segment:

- the spatial branch (`SpatialBranch`) sees its log-mel filterbanks: per-utterance CMVN,
  three parallel convolutions (temporal 11x1, spectral 1x9, joint 5x5), five 3x3 conv
  layers, global average pooling -> X_s;
- the temporal branch (`TemporalBranch`) sees its raw 16 kHz waveform: a Hugging Face
  `Wav2Vec2Model` and learned attention pooling over frames (eqs. 27-28) -> F_t.

`MultiLevelFusion` combines them (eqs. 29-30) and `Classifier` maps the result to logits
(eq. 31). `SERModel` assembles the variant named by `model.variant`; `TemporalClassifier`
is the temporal branch with a linear head, trained alone in stage 1 (Algorithm 1) and
handed to stage 2 with `SERModel.from_stage1`.

Batches are zero-padded at the end and carry each item's valid length. Padding never
leaks in eval mode: every layer that could spread it (convolutions, pooling, attention)
sees it masked, so a padded item gives the embedding it gets alone (tests/test_model.py).
In training mode BatchNorm's batch statistics include padded positions, as they include
the other items of the batch; batches of similar lengths (train.bucket_by_length) keep
this small.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

from .config import TINY_ENCODER, ModelConfig
from .errors import ConfigError

Batch = Mapping[str, torch.Tensor]


# --------------------------------------------------------------------------- masks


def time_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size] bool, True on the first lengths[b] positions of each row."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def halve_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Valid length after a 2x downsampling with a partial last window: ceil(L / 2)."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


def _check_lengths(lengths: torch.Tensor, size: int, name: str, device: torch.device) -> torch.Tensor:
    lengths = torch.as_tensor(lengths, device=device).long()
    if lengths.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor of valid lengths, got shape {tuple(lengths.shape)}")
    if bool((lengths > size).any()) or bool((lengths < 0).any()):
        raise ValueError(f"{name} must lie in [0, {size}] (the padded length), got {lengths.tolist()}")
    return lengths


# --------------------------------------------------------------------------- spatial branch


def cmvn(fbank: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance cepstral mean and variance normalisation of [B, T, bins] filterbanks.

    Each mel bin gets zero mean and unit variance over the item's valid frames only
    (statistics from padding would depend on how much of it the batch adds); padded frames
    are set to 0. Computed in float32 whatever the input dtype.
    """
    x = fbank.float()
    mask = time_mask(lengths, x.shape[1])[:, :, None].to(x.dtype)
    count = mask.sum(1, keepdim=True).clamp_min(1.0)
    mean = (x * mask).sum(1, keepdim=True) / count
    var = ((x - mean).square() * mask).sum(1, keepdim=True) / count
    return (x - mean) / torch.sqrt(var + eps) * mask


class ConvBNReLU(nn.Module):
    """3x3 convolution -> BatchNorm -> ReLU, optionally followed by 2x2 max pooling."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        # ceil_mode keeps a partial last window, so L valid frames become ceil(L / 2).
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if downsample else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, C, T, F]; mask: [B, T] bool. Returns the new map and its mask."""
        return _activate_and_pool(self.norm(self.conv(x)), mask, self.pool)


def _activate_and_pool(
    x: torch.Tensor, mask: torch.Tensor, pool: nn.Module | None
) -> tuple[torch.Tensor, torch.Tensor]:
    # ReLU, then zero the padded frames: BatchNorm's shift made them non-zero, and the next
    # convolution must read zeros there, as it does past the end of an unpadded item.
    # Activations are >= 0, so a pooling window holding a zeroed padded frame takes the
    # same maximum as the partial window of the unpadded item.
    x = F.relu(x) * mask[:, None, :, None].to(x.dtype)
    if pool is None:
        return x, mask
    lengths = halve_lengths(mask.sum(1))
    x = pool(x)
    return x, time_mask(lengths, x.shape[2])


class ParallelConv(nn.Module):
    """Temporal (11x1), spectral (1x9) and joint (5x5) kernels side by side ("same"
    padding), concatenated, then BatchNorm, ReLU and 2x2 max pooling."""

    def __init__(self, channels: int):
        super().__init__()
        self.temporal = nn.Conv2d(1, channels, kernel_size=(11, 1), padding=(5, 0), bias=False)
        self.spectral = nn.Conv2d(1, channels, kernel_size=(1, 9), padding=(0, 4), bias=False)
        self.joint = nn.Conv2d(1, channels, kernel_size=(5, 5), padding=(2, 2), bias=False)
        self.norm = nn.BatchNorm2d(3 * channels)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.temporal(x), self.spectral(x), self.joint(x)], dim=1)
        return _activate_and_pool(self.norm(x), mask, self.pool)


class SpatialBranch(nn.Module):
    """Log-mel filterbanks [B, T, bins] (or [B, 1, T, bins]) -> X_s [B, conv_channels[-1]].

    Inputs are normalised per mel bin, by `model.spatial_norm`: "global" uses the training
    set's mean and standard deviation (`set_input_statistics`, stored as buffers so a saved
    model carries them) and keeps loudness and spectral tilt, which are emotion cues;
    "utterance" is per-utterance CMVN, which removes them. Time is downsampled 32x
    (ParallelConv, then the first four 3x3 layers); frequency too, with partial windows, so
    40 bins end as 2. The output is the average over valid time positions and all
    frequency positions of the last feature map.
    """

    def __init__(self, config: ModelConfig, num_bins: int = 40):
        super().__init__()
        self.norm_mode = config.spatial_norm
        self.register_buffer("input_mean", torch.zeros(num_bins))
        self.register_buffer("input_std", torch.ones(num_bins))
        self.parallel = ParallelConv(config.parallel_channels)
        channels = [3 * config.parallel_channels, *config.conv_channels]
        last = len(config.conv_channels) - 1
        self.convs = nn.ModuleList(
            ConvBNReLU(channels[i], channels[i + 1], downsample=i < last) for i in range(len(config.conv_channels))
        )
        self.output_dim = channels[-1]

    def forward(self, fbank: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if fbank.ndim == 4 and fbank.shape[1] == 1:
            fbank = fbank[:, 0]
        if fbank.ndim != 3:
            raise ValueError(f"fbank must be [B, frames, bins] or [B, 1, frames, bins], got {tuple(fbank.shape)}")
        # An item without a single valid frame is read as its first (zero) frame, so it
        # gets a defined embedding instead of a division by zero.
        lengths = _check_lengths(lengths, fbank.shape[1], "fbank_lengths", fbank.device).clamp_min(1)
        mask = time_mask(lengths, fbank.shape[1])
        if self.norm_mode == "utterance":
            x = cmvn(fbank, lengths)[:, None]  # [B, 1, T, bins]
        else:
            x = ((fbank.float() - self.input_mean) / self.input_std * mask[:, :, None])[:, None]
        x, mask = self.parallel(x, mask)
        for conv in self.convs:
            x, mask = conv(x, mask)
        # Padded positions are already zero; divide by the number of valid positions.
        valid = mask.sum(1).float() * x.shape[3]
        return x.float().sum(dim=(2, 3)) / valid[:, None]

    @torch.no_grad()
    def set_input_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-bin mean and standard deviation of the training filterbanks ("global" norm)."""
        self.input_mean.copy_(mean)
        self.input_std.copy_(std.clamp_min(1e-5))


# --------------------------------------------------------------------------- temporal branch


def tiny_encoder_config(mask_time_prob: float) -> Wav2Vec2Config:
    """A small Wav2Vec2 for offline runs and tests (`model.encoder=tiny`), 0.26 M parameters.

    It keeps wav2vec2's conv kernels and strides (320x downsampling: 50 frames/s at 16 kHz,
    400-sample receptive field) with narrow layers. Layer normalisation in the feature
    encoder (and pre-norm transformer layers) keeps padded batches exact with an attention
    mask, which the group-norm variant does not.
    """
    return Wav2Vec2Config(
        conv_dim=(32, 32, 32, 32, 32, 64, 64),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        hidden_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=192,
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=4,
        layerdrop=0.0,  # with two layers, dropping one is too much
        apply_spec_augment=True,
        mask_time_prob=mask_time_prob,
    )


def build_encoder(config: ModelConfig) -> Wav2Vec2Model:
    """The Wav2Vec2 encoder named by `model.encoder`, with `model.mask_time_prob` set.

    "tiny" builds `tiny_encoder_config` with random weights (deterministic given torch's
    seed). Anything else goes to `Wav2Vec2Model.from_pretrained`: an existing local folder
    (written by `save_pretrained`) is read with local_files_only; a Hub name is first looked
    up in the local Hugging Face cache, then, unless HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE
    is set, downloaded (without network, huggingface_hub retries for ~25 s before failing).
    Failure raises ConfigError.
    """
    if config.encoder == TINY_ENCODER:
        return Wav2Vec2Model(tiny_encoder_config(config.mask_time_prob))
    name = config.encoder
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_pretrained(str(path), name, config.mask_time_prob, local_files_only=True)
    if _looks_like_path(name):
        problem = "is a file, not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"model.encoder={name!r}: the folder {path} {problem}. {_ENCODER_HINT}")
    try:  # a Hub name: the local cache first, without touching the network
        return _from_pretrained(name, name, config.mask_time_prob, local_files_only=True)
    except ConfigError:
        if _offline():
            raise ConfigError(
                f"model.encoder={name!r} is not in the local Hugging Face cache and "
                f"HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set, so it cannot be downloaded. {_ENCODER_HINT}"
            ) from None
    return _from_pretrained(name, name, config.mask_time_prob, local_files_only=False)


_ENCODER_HINT = (
    "Use a Hugging Face model name with internet access (e.g. facebook/wav2vec2-base-960h), "
    "a local folder written by Wav2Vec2Model.save_pretrained(folder) (model.encoder=/path/to/folder), "
    f"or the small offline encoder (model.encoder={TINY_ENCODER})."
)


def _from_pretrained(source: str, name: str, mask_time_prob: float, local_files_only: bool) -> Wav2Vec2Model:
    try:
        # Passing mask_time_prob here sets it on the loaded config before the model is
        # built, so `masked_spec_embed` exists even if the checkpoint had masking off.
        return Wav2Vec2Model.from_pretrained(
            source, mask_time_prob=mask_time_prob, apply_spec_augment=True, local_files_only=local_files_only
        )
    except Exception as exc:  # hub, network, file and format errors all mean "cannot use it"
        where = "locally" if local_files_only else "locally or from the Hugging Face Hub"
        raise ConfigError(
            f"model.encoder={name!r}: cannot load a Wav2Vec2 model {where} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). {_ENCODER_HINT}"
        ) from exc


def _looks_like_path(name: str) -> bool:
    # Hub names are "model" or "owner/model"; more slashes, a backslash or a leading
    # ".", "/" or "~" can only mean a folder.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read the environment too, so that
    # setting it later in the process (a notebook, a test) is honoured.
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.is_offline_mode() or any(f and f.upper() in ("1", "ON", "YES", "TRUE") for f in flags)


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

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if waveform.ndim != 2:
            raise ValueError(f"waveform must be [B, samples], got {tuple(waveform.shape)}")
        # An item shorter than one encoder frame (25 ms) is read with enough of its zero
        # padding to make one frame; Hugging Face's mask helper would otherwise unmask the
        # whole row.
        lengths = _check_lengths(lengths, waveform.shape[1], "waveform_lengths", waveform.device)
        lengths = lengths.clamp(min=min(self.min_samples, waveform.shape[1]))
        sample_mask = time_mask(lengths, waveform.shape[1]).long()
        x = normalize_waveform(waveform, sample_mask)
        hidden = self.encoder(x, attention_mask=sample_mask if self.uses_attention_mask else None).last_hidden_state
        frame_mask = self.encoder._get_feature_vector_attention_mask(hidden.shape[1], sample_mask)
        return self.pooling(hidden, frame_mask)


# --------------------------------------------------------------------------- fusion and heads


class MultiLevelFusion(nn.Module):
    """Multi-level fusion of X_s and F_t (eqs. 29-30).

    F_st = FC3(FC2(FC1([X_s; F_t]))), each FC followed by ReLU       (eq. 29)
    F    = D · softmax(W_s X_s + W_t F_t + F_st)                    (eq. 30)

    The factor D (the fused width) is ours: a D-way softmax has entries near 1/D, which the
    classifier's first layer would see as near-constant inputs and learn from very slowly
    (measured: stage 2 stuck at chance on EmoDB without it). Scaling keeps eq. 30's
    normalised shape with entries of order 1.
    """

    def __init__(self, spatial_dim: int, temporal_dim: int, dims: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        width = spatial_dim + temporal_dim
        for dim in dims:
            layers += [nn.Linear(width, dim), nn.ReLU()]
            width = dim
        self.joint = nn.Sequential(*layers)
        self.spatial_proj = nn.Linear(spatial_dim, width)
        self.temporal_proj = nn.Linear(temporal_dim, width)
        self.output_dim = width

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        joint = self.joint(torch.cat([spatial, temporal.to(spatial.dtype)], dim=-1))
        fused = torch.softmax(self.spatial_proj(spatial) + self.temporal_proj(temporal) + joint, dim=-1)
        return self.output_dim * fused


class Classifier(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear (eq. 31)."""

    def __init__(self, input_dim: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _require(batch: Batch, keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in batch]
    if missing:
        raise ValueError(f"batch lacks {missing}; it has {sorted(batch)}")


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ConfigError(f"the model needs at least 2 classes, got num_classes={num_classes}")


class SERModel(nn.Module):
    """The spatial-temporal model; `model.variant` picks the Table VII ablation:

    "spatial"    X_s -> classifier (no encoder is built or loaded)
    "temporal"   F_t -> classifier
    "integrated" [X_s; F_t] -> classifier
    "full"       multi-level fusion of X_s and F_t -> classifier

    forward(batch) takes `fbank` [B, T, bins] + `fbank_lengths` [B] (spatial branch) and/or
    `waveform` [B, S] + `waveform_lengths` [B] (temporal branch) and returns
    {"logits": [B, K], "embedding": [B, D]}, the embedding being the classifier's input.
    `encoder` replaces the one `build_encoder(model_config)` would build.
    """

    def __init__(self, model_config: ModelConfig, num_classes: int, encoder: Wav2Vec2Model | None = None):
        super().__init__()
        model_config.validate()
        _check_num_classes(num_classes)
        self.variant = model_config.variant
        self.spatial = SpatialBranch(model_config) if self.variant != "temporal" else None
        if self.variant == "spatial":
            if encoder is not None:
                raise ConfigError("model.variant='spatial' has no temporal branch, but an encoder was given")
            self.temporal = None
        else:
            self.temporal = TemporalBranch(encoder if encoder is not None else build_encoder(model_config))

        self.fusion = None
        if self.variant == "full":
            self.fusion = MultiLevelFusion(self.spatial.output_dim, self.temporal.output_dim, model_config.fusion_dims)
            embedding_dim = self.fusion.output_dim
        else:
            embedding_dim = sum(branch.output_dim for branch in (self.spatial, self.temporal) if branch is not None)
        self.embedding_dim = embedding_dim
        self.classifier = Classifier(embedding_dim, model_config.classifier_hidden, num_classes, model_config.dropout)

    @classmethod
    def from_stage1(cls, stage1: "TemporalClassifier", model_config: ModelConfig, num_classes: int) -> "SERModel":
        """A fresh model whose temporal branch (encoder and attention pooling) is a copy of
        the one trained in stage 1; the other parts are newly initialised."""
        if model_config.variant == "spatial":
            raise ConfigError("model.variant='spatial' has no temporal branch to take from stage 1")
        model = cls(model_config, num_classes, encoder=copy.deepcopy(stage1.temporal.encoder))
        model.temporal.load_state_dict(stage1.temporal.state_dict())
        return model

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        features = []
        if self.spatial is not None:
            _require(batch, ("fbank", "fbank_lengths"))
            features.append(self.spatial(batch["fbank"], batch["fbank_lengths"]))
        if self.temporal is not None:
            _require(batch, ("waveform", "waveform_lengths"))
            features.append(self.temporal(batch["waveform"], batch["waveform_lengths"]))
        if self.fusion is not None:
            embedding = self.fusion(*features)
        elif len(features) == 2:
            embedding = torch.cat([features[0], features[1].to(features[0].dtype)], dim=-1)
        else:
            embedding = features[0]
        return {"logits": self.classifier(embedding), "embedding": embedding}


class TemporalClassifier(nn.Module):
    """Stage 1 (Algorithm 1): the temporal branch with a linear head. Same forward as
    `SERModel` (only `waveform` and `waveform_lengths` are read); embedding = F_t."""

    def __init__(self, model_config: ModelConfig, num_classes: int, encoder: Wav2Vec2Model | None = None):
        super().__init__()
        model_config.validate()
        _check_num_classes(num_classes)
        self.temporal = TemporalBranch(encoder if encoder is not None else build_encoder(model_config))
        self.head = nn.Linear(self.temporal.output_dim, num_classes)
        self.embedding_dim = self.temporal.output_dim

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        _require(batch, ("waveform", "waveform_lengths"))
        embedding = self.temporal(batch["waveform"], batch["waveform_lengths"])
        return {"logits": self.head(embedding), "embedding": embedding}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (of those with requires_grad, if `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
