"""Training samples: one per segment, carrying its utterance's labels (§III-B, §V-C).

`build_samples` turns a partition table (`labels.partition`) into one `Sample` per segment
(utterances cut into segments of at most 7 s, short ones zero-padded to 1.5 s, by
`inputs.utterance_inputs`); every segment inherits its utterance's label. Waveforms and
filterbanks come from the feature cache, so a second run loads instead of recomputing.

`fbank_statistics` and `clear_class_counts` summarise a training set (the spatial branch's
input normalisation, the eq. 7 class weights). `aggregate_by_utterance` is the evaluation
rule: an utterance's prediction is the mean of its segments' class probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import DataConfig, FeatureConfig
from ..errors import AudioError, ConfigError, ManifestError, SerError
from .cache import FeatureCache
from .inputs import SegmentInputs, is_missing, row_inputs
from .labels import AMBIGUOUS, CLEAR, DROPPED, SOFT_PREFIX, Partition
from .manifest import TRUE_PREFIX


@dataclass
class Sample:
    """One segment of an utterance, with the utterance's labels.

    `waveform` ([samples], float32) is the segment as the model gets it: zero-padded at the
    end to at least `data.min_segment_s`; its first `num_valid_samples` samples are real
    audio. `fbank` ([frames, num_mel_bins]) is computed on that padded waveform; its first
    `num_valid_frames` frames see only real audio.
    """

    sample_id: str  # f"{utt_id}#{k}" for the k-th segment; unique
    utt_id: str
    speaker: str
    session: str | None
    subset: str  # "clear" or "ambiguous"
    y_soft: torch.Tensor  # [K] float32: one-hot (clear) or vote proportions (ambiguous, eq. 5)
    true: torch.Tensor | None  # [K] float32 known true distribution (synthetic corpora)
    waveform: torch.Tensor
    num_valid_samples: int
    fbank: torch.Tensor
    num_valid_frames: int
    # wav2vec2's frozen convolutional features [frames, channels], when computed once per fold
    # (model.freeze_feature_encoder; see model.temporal.TemporalBranch).
    front_end: torch.Tensor | None = None
    # A frozen encoder's hidden states of every layer [frames, layers, hidden], computed once per
    # segment and cached (model.encoder_mode=frozen; see train.frozen).
    hidden_states: torch.Tensor | None = None

    @property
    def ambiguous(self) -> bool:
        return self.subset == AMBIGUOUS


def build_samples(
    parted: Partition,
    data_config: DataConfig,
    feature_config: FeatureConfig,
    cache: FeatureCache | None,
    subsets: Sequence[str] = (CLEAR, AMBIGUOUS),
    progress: bool = True,
) -> list[Sample]:
    """One `Sample` per segment of every utterance of `parted` in `subsets`, in table order.

    `parted` comes from ``labels.partition(read_manifest(path), data_config)``. Dropped
    utterances are never samples; every other utterance of the requested subsets either
    yields its segments or raises (an `AudioError` naming the file and the utt_id).
    """
    subsets = _checked_subsets(subsets)
    classes = tuple(data_config.classes)
    if not isinstance(parted, Partition):
        raise ValueError(f"build_samples needs a Partition (labels.partition(read_manifest(path), data_config)), "
                         f"not {type(parted).__name__}")
    if parted.classes != classes:
        raise ConfigError(
            f"the partition table was made for classes {parted.classes!r}, "
            f"data.classes is {classes!r}; partition the manifest with this data config"
        )
    table = parted.table
    duplicated = table["utt_id"][table["utt_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ManifestError(f"{parted.source}: duplicate utt_id(s) {duplicated[:5]}")

    rows = table[table["subset"].isin(subsets)]
    soft = rows[[SOFT_PREFIX + c for c in classes]].to_numpy(dtype=np.float32)
    true = _true_matrix(rows, classes)
    root, source = parted.root, parted.source

    samples = []
    records = rows.to_dict("records")
    for i, row in enumerate(tqdm(records, desc="segments", unit="utt", disable=not progress)):
        utt_id = str(row["utt_id"])
        try:
            segments = row_inputs(row, root, data_config, feature_config, cache)
        except AudioError as exc:
            raise AudioError(f"utterance {utt_id!r} ({source}): {exc}") from exc
        true_row = None if true is None or np.isnan(true[i]).any() else torch.from_numpy(true[i].copy())
        for k, segment in enumerate(segments):
            samples.append(Sample(
                sample_id=segment_id(utt_id, k),
                utt_id=utt_id,
                speaker=str(row["speaker"]),
                session=_optional_str(row, "session"),
                subset=row["subset"],
                y_soft=torch.from_numpy(soft[i].copy()),
                true=true_row,
                waveform=segment.waveform.to(torch.float32),
                num_valid_samples=segment.num_valid_samples,
                fbank=segment.fbank,
                num_valid_frames=segment.num_valid_frames,
            ))
    return samples


def segment_id(utt_id: str, index: int) -> str:
    """The id of an utterance's `index`-th segment: what label stores and batches call a sample."""
    return f"{utt_id}#{index}"


def split_segment_id(sample_id: str) -> tuple[str, int]:
    """``"{utt_id}#{k}"`` -> (utt_id, k)."""
    utt_id, sep, index = sample_id.rpartition("#")
    if not sep or not utt_id or not index.isdigit():
        raise SerError(f"sample id {sample_id!r} is not of the form '<utt_id>#<segment index>'")
    return utt_id, int(index)


def segment_inputs(sample_id: str, manifest: pd.DataFrame, data_config: DataConfig,
                   feature_config: FeatureConfig) -> SegmentInputs:
    """A sample's model inputs, re-read from the audio exactly as for training. `manifest` is a
    `read_manifest` frame (its attrs["root"] locates the audio)."""
    utt_id, index = split_segment_id(sample_id)
    rows = manifest[manifest["utt_id"].astype(str) == utt_id]
    if rows.empty:
        raise ManifestError(f"utterance {utt_id!r} of sample {sample_id!r} is not in the manifest "
                            f"{manifest.attrs.get('source', '')}")
    segments = row_inputs(rows.iloc[0].to_dict(), manifest.attrs["root"], data_config, feature_config)
    if index >= len(segments):
        raise SerError(f"sample {sample_id!r}: utterance {utt_id!r} has only {len(segments)} segment(s) with "
                       f"data.max_segment_s={data_config.max_segment_s}; was the run trained with another config?")
    return segments[index]


def _checked_subsets(subsets: Sequence[str]) -> tuple[str, ...]:
    if isinstance(subsets, str):
        subsets = (subsets,)
    subsets = tuple(subsets)
    if DROPPED in subsets:
        raise ValueError(f"dropped utterances have no usable label and are never samples; got subsets {subsets}")
    unknown = [s for s in subsets if s not in (CLEAR, AMBIGUOUS)]
    if unknown or not subsets:
        raise ValueError(f"subsets must be a non-empty selection of {(CLEAR, AMBIGUOUS)}, got {subsets}")
    return subsets


def _true_matrix(rows: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray | None:
    """``true_<class>`` as [N, K] float32 (NaN where a row has none), or None when the
    manifest's true columns are not exactly the target classes (a distribution over other
    classes has no meaning in the model's output space)."""
    present = {c[len(TRUE_PREFIX):] for c in rows.columns if c.startswith(TRUE_PREFIX)}
    if present != set(classes):
        return None
    return rows[[TRUE_PREFIX + c for c in classes]].to_numpy(dtype=np.float32)


def _optional_str(row: dict, column: str) -> str | None:
    value = row.get(column)
    return None if is_missing(value) else str(value)



def fbank_statistics(samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and standard deviation over the valid frames of `samples` (the spatial
    branch's "global" input normalisation)."""
    frames = torch.cat([s.fbank[: max(s.num_valid_frames, 1)].double() for s in samples])
    return frames.mean(dim=0).float(), frames.std(dim=0).float()


def clear_class_counts(samples: Sequence[Sample], num_classes: int) -> torch.Tensor:
    """Clear samples per class, counted by segment ([K] long), for the eq. 7 weights.

    By segment, not by utterance: the loss is averaged over segments, so a long utterance
    cut into two segments weighs twice in it, and the weights must balance what the loss sees.
    """
    counts = torch.zeros(num_classes, dtype=torch.long)
    for sample in samples:
        if sample.subset != CLEAR:
            continue
        if sample.y_soft.shape != (num_classes,):
            raise ValueError(f"sample {sample.sample_id!r} has a label of shape {tuple(sample.y_soft.shape)}, "
                             f"expected [{num_classes}]")
        counts[int(sample.y_soft.argmax())] += 1
    return counts


def aggregate_by_utterance(sample_utt_ids: Sequence[str], probs):
    """Utterance predictions: the mean of each utterance's segment probabilities.

    Returns the utterance ids in order of first appearance and their mean probabilities
    [U, K], as a tensor or an array like `probs` (the rule `ser predict` uses for long files).
    """
    as_numpy = isinstance(probs, np.ndarray)
    values = torch.as_tensor(probs)
    if values.ndim != 2 or values.shape[0] != len(sample_utt_ids):
        raise ValueError(f"probs must be [{len(sample_utt_ids)}, K] (one row per segment id), "
                         f"got shape {tuple(values.shape)}")
    position: dict[str, int] = {}
    group = torch.tensor([position.setdefault(u, len(position)) for u in sample_utt_ids], dtype=torch.long)
    sums = torch.zeros(len(position), values.shape[1], dtype=torch.float64, device=values.device)
    sums.index_add_(0, group.to(values.device), values.double())
    counts = torch.bincount(group, minlength=len(position)).to(sums)
    means = (sums / counts[:, None]).to(values.dtype if values.is_floating_point() else torch.float32)
    return list(position), (means.cpu().numpy() if as_numpy else means)
