"""Frame-level prosody and voice quality: the targets of the pretraining objective's prosody
workers (`model.pretraining`, after PASE+'s "workers": Ravanelli et al., ICASSP 2020).

The targets are openSMILE's eGeMAPS low-level descriptors (Eyben et al. 2016), the minimal
acoustic parameter set for affective computing, every 10 ms: F0 in semitones, loudness, jitter,
shimmer, HNR, the first three formants, spectral balance and four MFCCs -- the features the
`smile-svm` baseline summarises per utterance, and what masked filterbank reconstruction weights
little. The descriptors defined on voiced frames only ("...nz") are 0 elsewhere, so a voicing flag
(F0 > 0) is added as one more target.

Each encoder frame (20 ms, `train.pretrain.FRAME_STRIDE`) takes the mean of the two 10 ms
descriptor frames starting at its start, as `train.pretrain.frame_targets` pairs filterbank frames.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

F0_COLUMN = "F0semitoneFrom27.5Hz_sma3nz"
DESCRIPTOR_HOP = 160  # samples: openSMILE's 10 ms at 16 kHz


@functools.cache  # building the extractor costs more than a short utterance's descriptors
def _extractor():
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.LowLevelDescriptors)


def prosody_names() -> list[str]:
    """The target dimensions in order: the eGeMAPS descriptors, then ``voiced``."""
    return [*_extractor().feature_names, "voiced"]


def prosody_frames(samples: torch.Tensor, sample_rate: int, frame_stride: int, num_frames: int) -> torch.Tensor:
    """[num_frames, descriptors + 1]: each encoder frame's eGeMAPS descriptors and voicing flag.

    `frame_stride` is the encoder's stride in samples, a multiple of openSMILE's 10 ms hop;
    `num_frames` is the encoder's frame count for `samples` (the last frames repeat the last
    descriptor frame where openSMILE's window stops earlier).
    """
    if sample_rate != 16000 or frame_stride % DESCRIPTOR_HOP:
        raise ValueError(f"prosody targets need 16 kHz audio and a stride that is a multiple of {DESCRIPTOR_HOP} "
                         f"samples, got {sample_rate} Hz and {frame_stride}")
    table = _extractor().process_signal(samples.numpy().astype(np.float32), sample_rate)
    descriptors = table.to_numpy(dtype=np.float32)
    voiced = (table[F0_COLUMN].to_numpy() > 0).astype(np.float32)[:, None]
    per_hop = np.concatenate([descriptors, voiced], axis=1)
    pair = frame_stride // DESCRIPTOR_HOP
    index = np.minimum(np.arange(num_frames * pair), len(per_hop) - 1)
    return torch.from_numpy(per_hop[index].reshape(num_frames, pair, -1).mean(axis=1))


def standardize(frames: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict]:
    """Each dimension z-scored over the whole corpus, so that every descriptor weighs alike in
    the workers' mean squared error; with the mean and std used (for pretraining.json)."""
    every = torch.cat(frames).double()
    mean, std = every.mean(0), every.std(0).clamp_min(1e-6)
    scaled = [((f.double() - mean) / std).float() for f in frames]
    return scaled, {"mean": mean.tolist(), "std": std.tolist()}
