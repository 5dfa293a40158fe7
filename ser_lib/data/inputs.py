"""Utterance → model inputs: the one recipe load → cut → pad → fbank (§V-C).

An utterance is read at 16 kHz (`audio.load_audio`), cut into segments of at most 7 s that
are zero-padded at the end to 1.5 s (`audio.cut_and_pad`), and each padded segment gets its
40-bin log-mel filterbank (`features.fbank`). The model reads both: the waveform (temporal
branch) and the filterbank (spatial branch). Training (through the feature cache), `ser
predict`, the label-drift explorer and the notebooks all call `utterance_inputs`, so they
see exactly what the model saw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch

from ..config import DataConfig, FeatureConfig
from .audio import cut_and_pad, load_audio
from .cache import FeatureCache
from .features import fbank, num_frames


@dataclass
class SegmentInputs:
    """One segment of an utterance with the model's two inputs.

    `waveform` ([samples], 16 kHz) and `fbank` ([frames, bins]) are zero-padded at the end
    (§V-C minimum length); the first `num_valid_samples` / `num_valid_frames` are real.
    """

    waveform: torch.Tensor
    fbank: torch.Tensor
    num_valid_samples: int
    num_valid_frames: int


def utterance_inputs(
    path: str | Path,
    data_config: DataConfig,
    feature_config: FeatureConfig,
    start: float | None = None,
    end: float | None = None,
    cache: FeatureCache | None = None,
) -> list[SegmentInputs]:
    """Load an utterance once, cut it into segments and compute their filterbanks.

    With a `cache`, the segment waveforms ("segments") and the filterbanks ("fbank") are
    separate entries, so changing only feature settings reuses the loaded audio.
    """
    rate = data_config.sample_rate
    segment_params = {
        # float(): 1 and 1.0 (or numpy scalars from a manifest) must give the same key.
        "start": None if start is None else float(start),
        "end": None if end is None else float(end),
        "sample_rate": rate,
        "mixdown": data_config.mixdown,
        "resample": data_config.resample,
        "max_segment_s": data_config.max_segment_s,
        "min_segment_s": data_config.min_segment_s,
        "segmentation": data_config.segmentation,
    }

    def make_segments() -> dict[str, torch.Tensor]:
        waveform = load_audio(path, rate, start, end, mixdown=data_config.mixdown, resample=data_config.resample)
        segments = cut_and_pad(
            waveform, rate, data_config.max_segment_s, data_config.min_segment_s, data_config.segmentation
        )
        arrays = {f"waveform_{i}": segment.waveform for i, segment in enumerate(segments)}
        arrays["num_valid_samples"] = torch.tensor([s.num_valid_samples for s in segments])
        return arrays

    def make_fbanks() -> dict[str, torch.Tensor]:
        return {f"fbank_{i}": fbank(waveform, feature_config, rate) for i, waveform in enumerate(waveforms)}

    stored = make_segments() if cache is None else cache.get_or_compute("segments", path, segment_params, make_segments)
    valid = [int(n) for n in stored["num_valid_samples"]]
    waveforms = [stored[f"waveform_{i}"] for i in range(len(valid))]
    if cache is None:
        fbanks = make_fbanks()
    else:
        fbank_params = {**segment_params, "features": dataclasses.asdict(feature_config)}
        fbanks = cache.get_or_compute("fbank", path, fbank_params, make_fbanks)
    return [
        SegmentInputs(waveforms[i], fbanks[f"fbank_{i}"], valid[i], num_frames(valid[i], feature_config, rate))
        for i in range(len(valid))
    ]


def row_inputs(row: Mapping, root: str | Path, data_config: DataConfig, feature_config: FeatureConfig,
               cache: FeatureCache | None = None) -> list[SegmentInputs]:
    """`utterance_inputs` of one manifest row (``path`` relative to `root`, optional start/end)."""
    return utterance_inputs(Path(root) / row["path"], data_config, feature_config,
                            optional_float(row, "start"), optional_float(row, "end"), cache)


def model_batch(segments: Sequence[SegmentInputs]) -> dict[str, torch.Tensor]:
    """A batch the model's forward takes, from segments of equal length (e.g. one segment)."""
    return {
        "waveform": torch.stack([s.waveform for s in segments]),
        "waveform_lengths": torch.tensor([len(s.waveform) for s in segments]),
        "fbank": torch.stack([s.fbank for s in segments]),
        "fbank_lengths": torch.tensor([s.fbank.shape[0] for s in segments]),
    }


def is_missing(value) -> bool:
    """An empty manifest cell: None, NaN or blank text."""
    return value is None or (isinstance(value, str) and not value.strip()) or (
        not isinstance(value, str) and pd.isna(value))


def optional_float(row: Mapping, column: str) -> float | None:
    value = row.get(column)
    return None if is_missing(value) else float(value)
