"""The spatial-temporal model (§IV), its Table VII ablation variants, and its files.

Two branches read the same segment:

- the spatial branch (`spatial.SpatialBranch`) sees its log-mel filterbanks -> X_s;
- the temporal branch (`temporal.TemporalBranch`) sees its raw 16 kHz waveform: a Hugging Face
  `Wav2Vec2Model` (`encoder`) and learned attention pooling over frames (eqs. 27-28) -> F_t.

`fusion.MultiLevelFusion` combines them (eqs. 29-30) and `fusion.Classifier` maps the result to
logits (eq. 31). `SERModel` assembles the variant named by `model.variant`; `TemporalClassifier`
is the temporal branch with a linear head, trained alone in stage 1 (Algorithm 1) and handed to
stage 2 with `SERModel.from_stage1`. `save_model` / `load_model` write and rebuild a trained
model offline, encoder architecture included.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

from ..config import Config, ModelConfig, config_from_dict
from ..errors import ConfigError
from ..runtime import load_checkpoint, save_checkpoint
from .encoder import build_encoder
from .fusion import Classifier, MultiLevelFusion
from .spatial import SpatialBranch
from .temporal import TemporalBranch

Batch = Mapping[str, torch.Tensor]


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
    `waveform` [B, S] + `waveform_lengths` [B] (temporal branch; optionally `front_end`, the
    frozen front end's precomputed features, or a frozen encoder's cached `hidden_states` with
    `hidden_lengths`, see `TemporalBranch`) and returns
    {"logits": [B, K], "embedding": [B, D]}, the embedding being the classifier's input.
    `encoder` replaces the one `build_encoder(model_config)` would build.
    """

    def __init__(self, model_config: ModelConfig, num_classes: int, encoder: Wav2Vec2Model | None = None):
        super().__init__()
        _check_num_classes(num_classes)
        self.variant = model_config.variant
        self.spatial = SpatialBranch(model_config) if self.variant != "temporal" else None
        if self.variant == "spatial":
            if encoder is not None:
                raise ConfigError("model.variant='spatial' has no temporal branch, but an encoder was given")
            self.temporal = None
        else:
            self.temporal = temporal_branch(model_config, encoder)

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
            features.append(temporal_features(self.temporal, batch))
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
        _check_num_classes(num_classes)
        self.temporal = temporal_branch(model_config, encoder)
        self.head = nn.Linear(self.temporal.output_dim, num_classes)
        self.embedding_dim = self.temporal.output_dim

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        _require(batch, ("waveform", "waveform_lengths"))
        embedding = temporal_features(self.temporal, batch)
        return {"logits": self.head(embedding), "embedding": embedding}


def temporal_branch(model_config: ModelConfig, encoder: Wav2Vec2Model | None = None) -> TemporalBranch:
    """The temporal branch `model_config` asks for: its encoder fine-tuned or frozen (`model.encoder_mode`)."""
    encoder = encoder if encoder is not None else build_encoder(model_config)
    return TemporalBranch(encoder, frozen=model_config.encoder_mode == "frozen",
                          layer_norm=model_config.frozen_layer_norm)


def temporal_features(temporal: TemporalBranch, batch: Batch) -> torch.Tensor:
    """F_t of a batch, from whichever precomputed encoder outputs it carries (see `TemporalBranch`)."""
    return temporal(batch["waveform"], batch["waveform_lengths"], batch.get("front_end"),
                    batch.get("hidden_states"), batch.get("hidden_lengths"))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (of those with requires_grad, if `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- saved models


def save_model(path: Path, model: SERModel, config: Config, classes) -> None:
    """Weights plus what rebuilds the model offline: the config, the classes and the encoder's
    architecture (so a model fine-tuned from a Hub encoder loads without the Hub)."""
    encoder = model.temporal.encoder.config.to_dict() if model.temporal is not None else None
    save_checkpoint(path, {"config": config.to_dict(), "classes": list(classes),
                           "encoder_config": json.dumps(encoder), "model": model.state_dict()})


def load_model(checkpoint: str | Path) -> tuple[SERModel, Config, list[str]]:
    """Rebuild a model written by `save_model` (weights_only loading), in eval mode."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise ConfigError(f"checkpoint {checkpoint} does not exist")
    state = load_checkpoint(checkpoint)
    if "classes" not in state or "config" not in state:
        raise ConfigError(f"{checkpoint} is a training checkpoint, not a saved model; use a fold's model.pt")
    config = config_from_dict(state["config"], source=str(checkpoint))
    encoder_config = json.loads(state["encoder_config"])
    encoder = None if encoder_config is None else Wav2Vec2Model(Wav2Vec2Config.from_dict(encoder_config))
    model = SERModel(config.model, len(state["classes"]), encoder=encoder)
    model.load_state_dict(state["model"])
    return model.eval(), config, list(state["classes"])
