"""Emotion distribution of an audio file with a trained model (`ser predict`).

A file is read at 16 kHz, cut into ≤7 s segments padded to ≥1.5 s exactly as in training, and
the segments' class probabilities are averaged: the same rule as the utterance-level
evaluation (`data.aggregate_by_utterance`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from .audio import cut_and_pad, load_audio
from .config import Config, apply_overrides, flatten
from .errors import ConfigError
from .features import fbank
from .model import SERModel
from .training import load_checkpoint, select_device, to_device

DEFAULT_CHECKPOINT = Path("runs/demo/model.pt")


def load_model(checkpoint: str | Path) -> tuple[SERModel, Config, list[str]]:
    """Rebuild a model saved by `training.save_model` (weights_only loading)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        hint = " (run `make demo` first)" if checkpoint == DEFAULT_CHECKPOINT else ""
        raise ConfigError(f"checkpoint {checkpoint} does not exist{hint}")
    state = load_checkpoint(checkpoint)
    if "classes" not in state or "config" not in state:
        raise ConfigError(f"{checkpoint} is a training checkpoint, not a saved model; use a fold's model.pt")
    config = Config()
    apply_overrides(config, flatten(state["config"]))
    config.validate()
    encoder_config = json.loads(state["encoder_config"])
    encoder = None if encoder_config is None else Wav2Vec2Model(Wav2Vec2Config.from_dict(encoder_config))
    model = SERModel(config.model, len(state["classes"]), encoder=encoder)
    model.load_state_dict(state["model"])
    return model.eval(), config, list(state["classes"])


def predict_file(path: str | Path, checkpoint: str | Path = DEFAULT_CHECKPOINT,
                 device: str = "auto") -> dict[str, float]:
    """{class: probability} for one audio file, averaged over its segments."""
    model, config, classes = load_model(checkpoint)
    device = select_device(device)
    return predict_waveform_file(path, model.to(device), config, classes, device)


@torch.no_grad()
def predict_waveform_file(path: str | Path, model: SERModel, config: Config, classes: list[str],
                          device: torch.device) -> dict[str, float]:
    """As `predict_file`, with a loaded model (for many files)."""
    waveform = load_audio(path, config.data.sample_rate, mixdown=config.data.mixdown, resample=config.data.resample)
    segments = cut_and_pad(waveform, config.data.sample_rate, config.data.max_segment_s,
                           config.data.min_segment_s, config.data.segmentation)
    probs = []
    for segment in segments:  # one at a time: no padding between segments of different lengths
        features = fbank(segment.waveform, config.features, config.data.sample_rate)
        batch = to_device({
            "waveform": segment.waveform[None], "waveform_lengths": torch.tensor([len(segment.waveform)]),
            "fbank": features[None], "fbank_lengths": torch.tensor([features.shape[0]]),
        }, device)
        probs.append(torch.softmax(model(batch)["logits"].float(), dim=-1)[0].cpu())
    mean = torch.stack(probs).mean(dim=0)
    return {name: float(p) for name, p in zip(classes, mean)}
