"""A frozen encoder's hidden states, computed once per segment and cached (`model.encoder_mode=frozen`).

In frozen mode (SUPERB's protocol) the encoder never changes, so the hidden states of all its
layers are a fixed function of each segment: `attach_hidden_states` computes them once
(`TemporalBranch.layer_states`, on each segment alone, in float32) and every epoch, stage and run
reads them instead of running the encoder. They live in the feature cache as kind
"hidden_states", one entry per segment, keyed by

- a digest of the segment's samples as fed (which stands for the audio file, its start and end,
  and the segmentation that cut it),
- a digest of the encoder: its weights and its architecture (`config.json`), so a random `tiny`
  encoder of another seed, a rebuilt `tiny-pretrained`, a local `save_pretrained` folder or a Hub
  revision never reads another's states,
- the device type and torch's version, whose kernels round differently.

As every feature cache entry, it is written atomically, verified on load, recomputed when corrupt,
and shared by the processes and machines that share `cache_dir` (two writers of one entry write
the same bytes). Storage is float32: 50 frames/s × (layers + 1) × hidden × 4 bytes, about 58 KB
per second of audio for the tiny encoder (3 × 96) and 2 MB for wav2vec2-base (13 × 768).
"""

from __future__ import annotations

import hashlib

import torch
from tqdm.auto import tqdm

from ..data.cache import FeatureCache, canonical_json, state_digest, tensor_digest
from ..model.temporal import TemporalBranch
from .fold_data import FoldData

KIND = "hidden_states"


def encoder_digest(temporal: TemporalBranch) -> str:
    """sha256 of the encoder's weights and architecture."""
    encoder = temporal.encoder
    architecture = canonical_json(encoder.config.to_diff_dict())
    return hashlib.sha256(f"{state_digest(encoder.state_dict())}|{architecture}".encode()).hexdigest()


def attach_hidden_states(temporal: TemporalBranch, data: FoldData, cache: FeatureCache | None,
                         device: torch.device, progress: bool = True) -> None:
    """Set `sample.hidden_states` ([frames, layers + 1, hidden]) on every segment of the fold, from
    the cache or computed once. Without a cache they are computed for this fold only."""
    temporal.to(device)
    params = {"encoder": encoder_digest(temporal), "device": device.type, "torch": torch.__version__}
    samples = data.every_sample
    for sample in tqdm(samples, desc="frozen encoder: hidden states", unit="seg", leave=False, disable=not progress):
        def compute(sample=sample) -> torch.Tensor:
            return temporal.layer_states(sample.waveform)

        if cache is None:
            sample.hidden_states = compute()
        else:
            sample.hidden_states = cache.get_or_compute(KIND, None, params, compute,
                                                        digest=tensor_digest(sample.waveform))
