"""Emotion distribution of an audio file with a trained model (`ser predict`).

A file goes through the training recipe (`data.inputs.utterance_inputs`: 16 kHz, ≤7 s
segments padded to ≥1.5 s, filterbanks), and the segments' class probabilities are averaged:
the same rule as the utterance-level evaluation (`data.samples.aggregate_by_utterance`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Config
from .data.inputs import model_batch, utterance_inputs
from .errors import ConfigError
from .model import SERModel, load_model
from .runtime import select_device, to_device

DEFAULT_CHECKPOINT = Path("runs/demo/model.pt")


def predict_file(path: str | Path, checkpoint: str | Path = DEFAULT_CHECKPOINT,
                 device: str = "auto") -> dict[str, float]:
    """{class: probability} for one audio file, averaged over its segments."""
    if Path(checkpoint) == DEFAULT_CHECKPOINT and not DEFAULT_CHECKPOINT.exists():
        raise ConfigError(f"checkpoint {checkpoint} does not exist (run `make demo` first)")
    model, config, classes = load_model(checkpoint)
    device = select_device(device)
    return predict_waveform_file(path, model.to(device), config, classes, device)


@torch.no_grad()
def predict_waveform_file(path: str | Path, model: SERModel, config: Config, classes: list[str],
                          device: torch.device) -> dict[str, float]:
    """As `predict_file`, with a loaded model (for many files)."""
    segments = utterance_inputs(path, config.data, config.features)
    # One segment at a time: no padding between segments of different lengths.
    probs = [torch.softmax(model(to_device(model_batch([s]), device))["logits"].float(), dim=-1)[0].cpu()
             for s in segments]
    mean = torch.stack(probs).mean(dim=0)
    return {name: float(p) for name, p in zip(classes, mean)}
