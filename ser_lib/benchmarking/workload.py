"""What is benchmarked: the model built with eager attention, and random inputs for it.

Eager attention: transformers' "eager" attention runs explicit matmuls, which FlopCounterMode
sees; fused SDPA kernels (the default) go uncounted on CPU. Latency and training are timed on
that same model, so counts and times describe one computation.

Inputs are random waveforms and their log-mel filterbanks, computed before any timing: training
and `ser predict` compute filterbanks outside the model too.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
import torch.nn.functional as F

from ..config import Config
from ..data.features import fbank, num_frames
from ..data.inputs import SegmentInputs, model_batch
from ..data.labels import AMBIGUOUS, CLEAR
from ..data.samples import Sample
from ..errors import ConfigError
from ..model import SERModel, TemporalClassifier
from ..model.encoder import build_encoder


def with_encoder(config: Config, encoder: str) -> Config:
    """A copy of `config` whose `model.encoder` is `encoder`."""
    if not isinstance(encoder, str) or not encoder.strip():
        raise ConfigError(f"bench encoder must be tiny, base, a Hugging Face name or a folder, got {encoder!r}")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, encoder=encoder.strip())).validate()


def build_bench_model(config: Config, stage1: bool = False) -> torch.nn.Module:
    """The benchmarked model, seeded by `config.seed`, with eager attention, in eval mode:
    `SERModel` of `model.variant`, or the stage-1 `TemporalClassifier` if `stage1`."""
    torch.manual_seed(config.seed)
    num_classes = len(config.data.classes)
    with warnings.catch_warnings():
        # Group-norm encoders (base) warn that padding changes their output; batches here have none.
        warnings.filterwarnings("ignore", message="encoder .* uses feat_extract_norm")
        has_encoder = stage1 or config.model.variant != "spatial"
        encoder = build_encoder(config.model, attn_implementation="eager") if has_encoder else None
        model_class = TemporalClassifier if stage1 else SERModel
        return model_class(config.model, num_classes, encoder=encoder).eval()


def random_inputs(length_s: float, config: Config, batch_size: int = 1, seed: int = 0) -> list[SegmentInputs]:
    """`batch_size` random waveforms of `length_s` seconds with their filterbanks."""
    rate = config.data.sample_rate
    samples = round(length_s * rate)
    frames = num_frames(samples, config.features, rate)
    if frames == 0:
        raise ConfigError(f"bench length {length_s} s is shorter than one filterbank window "
                          f"({config.features.frame_length_ms} ms)")
    generator = torch.Generator().manual_seed(seed)
    waveforms = 0.1 * torch.randn(batch_size, samples, generator=generator)
    return [SegmentInputs(w, fbank(w, config.features, rate), samples, frames) for w in waveforms]


def random_segments(length_s: float, config: Config, batch_size: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """A model batch of `random_inputs`, as `ser predict` feeds the model."""
    return model_batch(random_inputs(length_s, config, batch_size, seed))


def training_samples(config: Config, length_s: float, ambiguous_fraction: float, seed: int = 0) -> list[Sample]:
    """`train.batch_size` training samples of `random_inputs`: clear ones with one-hot labels, and
    the first `ambiguous_fraction` of them ambiguous with random soft labels."""
    size, num_classes = config.train.batch_size, len(config.data.classes)
    inputs = random_inputs(length_s, config, size, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    clear = F.one_hot(torch.randint(num_classes, (size,), generator=generator), num_classes).float()
    soft = torch.softmax(torch.randn(size, num_classes, generator=generator), dim=-1)
    ambiguous = (torch.arange(size) < round(ambiguous_fraction * size)).tolist()
    return [Sample(sample_id=f"bench_{i}#0", utt_id=f"bench_{i}", speaker="bench", session=None,
                   subset=AMBIGUOUS if ambiguous[i] else CLEAR, y_soft=soft[i] if ambiguous[i] else clear[i],
                   true=None, waveform=x.waveform, num_valid_samples=x.num_valid_samples, fbank=x.fbank,
                   num_valid_frames=x.num_valid_frames)
            for i, x in enumerate(inputs)]
