"""Training data: segments with their labels, batching by length, and utterance-level pooling.

`build_samples` turns a partition table (`labels.partition`) into one `Sample` per segment
(§V-C: utterances cut into segments of at most 7 s, short ones zero-padded to 1.5 s); every
segment inherits its utterance's label. Waveforms and filterbanks come from the feature
cache, so a second run loads instead of recomputing.

`make_loader` batches segments of similar lengths (`LengthBucketSampler`): segments range
from 1.5 s to 7 s, and random batches would spend a large share of the encoder's compute on
zero padding. Batches depend only on (seed, epoch), so a resumed run sees the same batches
as an uninterrupted one.

`aggregate_by_utterance` is the evaluation rule: an utterance's prediction is the mean of
its segments' class probabilities.
"""

from __future__ import annotations

import abc
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from .cache import FeatureCache, utterance_features
from .config import DataConfig, FeatureConfig
from .errors import AudioError, ConfigError, ManifestError
from .labels import AMBIGUOUS, CLEAR, DROPPED, SOFT_PREFIX
from .manifest import TRUE_PREFIX

# Upper bound for num_workers=-1: collation is a cheap padding copy, more processes only cost memory.
MAX_AUTO_WORKERS = 8
# Batches each worker prepares ahead, so the accelerator never waits on a collate.
PREFETCH_FACTOR = 4


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

    @property
    def ambiguous(self) -> bool:
        return self.subset == AMBIGUOUS


def build_samples(
    parted: pd.DataFrame,
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
    if tuple(parted.attrs.get("classes", ())) != classes:
        raise ConfigError(
            f"the partition table was made for classes {parted.attrs.get('classes')!r}, "
            f"data.classes is {classes!r}; partition the manifest with this data config"
        )
    if "root" not in parted.attrs or "subset" not in parted.columns:
        raise ValueError("build_samples needs labels.partition(read_manifest(path), data_config), "
                         "which carries the manifest folder in attrs['root'] and a 'subset' column")
    source = parted.attrs.get("source", "manifest")
    duplicated = parted["utt_id"][parted["utt_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ManifestError(f"{source}: duplicate utt_id(s) {duplicated[:5]}")

    rows = parted[parted["subset"].isin(subsets)]
    soft = rows[[SOFT_PREFIX + c for c in classes]].to_numpy(dtype=np.float32)
    true = _true_matrix(rows, classes)
    root = Path(parted.attrs["root"])

    samples = []
    records = rows.to_dict("records")
    for i, row in enumerate(tqdm(records, desc="segments", unit="utt", disable=not progress)):
        utt_id = str(row["utt_id"])
        try:
            segments = utterance_features(
                root / row["path"], _optional_float(row, "start"), _optional_float(row, "end"),
                data_config, feature_config, cache,
            )
        except AudioError as exc:
            raise AudioError(f"utterance {utt_id!r} ({source}): {exc}") from exc
        true_row = None if true is None or np.isnan(true[i]).any() else torch.from_numpy(true[i].copy())
        for k, segment in enumerate(segments):
            samples.append(Sample(
                sample_id=f"{utt_id}#{k}",
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


def _missing(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        not isinstance(value, str) and pd.isna(value))


def _optional_float(row: dict, column: str) -> float | None:
    value = row.get(column)
    return None if _missing(value) else float(value)


def _optional_str(row: dict, column: str) -> str | None:
    value = row.get(column)
    return None if _missing(value) else str(value)


# ---------------------------------------------------------------------------------------
# Batching


class SegmentDataset(Dataset):
    """A list of samples; items are ``(index, sample)`` so a batch knows its positions."""

    def __init__(self, samples: Sequence[Sample]):
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[int, Sample]:
        return index, self.samples[index]

    def lengths(self) -> list[int]:
        """Waveform lengths as fed (padded to the minimum segment length), for bucketing."""
        return [s.waveform.shape[-1] for s in self.samples]


def collate(items: Sequence[tuple[int, Sample]]) -> dict:
    """Stack `SegmentDataset` items into a batch, zero-padding waveforms and filterbanks.

    ``waveform_lengths`` / ``fbank_lengths`` count each segment as fed, i.e. including its
    own zero padding up to 1.5 s: the paper pads short segments to 1.5 s and gives the model
    that input, because the encoder and the CNN need a minimum length; masking the padding
    back out would undo it. Only the batch padding beyond those lengths is to be masked.
    ``audio_lengths`` / ``audio_frame_lengths`` count the real audio, for anyone who needs it.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    indices, samples = zip(*items)
    batch = {
        "waveform": pad_sequence([s.waveform for s in samples], batch_first=True),
        "waveform_lengths": torch.tensor([s.waveform.shape[-1] for s in samples]),
        "audio_lengths": torch.tensor([s.num_valid_samples for s in samples]),
        "fbank": pad_sequence([s.fbank for s in samples], batch_first=True),
        "fbank_lengths": torch.tensor([s.fbank.shape[0] for s in samples]),
        "audio_frame_lengths": torch.tensor([s.num_valid_frames for s in samples]),
        "y_soft": torch.stack([s.y_soft for s in samples]),
        "ambiguous": torch.tensor([s.ambiguous for s in samples], dtype=torch.bool),
        "index": torch.tensor(indices, dtype=torch.long),
        "sample_ids": [s.sample_id for s in samples],
        "utt_ids": [s.utt_id for s in samples],
    }
    if all(s.true is not None for s in samples):
        batch["true"] = torch.stack([s.true for s in samples])
    return batch


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for (seed, epoch); SeedSequence mixes them so nearby pairs are unrelated."""
    state = np.random.SeedSequence([seed % 2**64, epoch % 2**64]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class _EpochBatchSampler(Sampler[list[int]], abc.ABC):
    """Batches of indices that are a pure function of (seed, epoch)."""

    def __init__(self, num_items: int, batch_size: int, shuffle: bool, seed: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    @abc.abstractmethod
    def batches(self) -> list[list[int]]:
        """This epoch's batches of dataset indices."""

    def _split(self, order) -> list[list[int]]:
        order = [int(i) for i in order]
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]


class RandomBatchSampler(_EpochBatchSampler):
    """Plain batches: consecutive indices, or a permutation drawn from a torch Generator
    seeded by (seed, epoch). The last partial batch is kept."""

    def batches(self) -> list[list[int]]:
        if not self.shuffle:
            return self._split(range(self.num_items))
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        return self._split(torch.randperm(self.num_items, generator=generator).tolist())


class LengthBucketSampler(_EpochBatchSampler):
    """Batches of similar lengths, in random order; every index exactly once per epoch.

    With shuffling, indices are sorted by log-length plus uniform noise of width `noise`
    (so items within ~`noise` relative length of each other mix, and batch composition
    changes from epoch to epoch), cut into batches of `batch_size` (the last, partial one
    kept) and the batches are shuffled. Without shuffling, it is a stable sort by length:
    the fastest order for evaluation. Everything is drawn from (seed, epoch) alone.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 noise: float = 0.1):
        self.lengths = np.asarray(lengths, dtype=np.float64)
        if self.lengths.ndim != 1 or not np.all(self.lengths > 0):
            raise ValueError("lengths must be a 1-D sequence of positive numbers")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        super().__init__(len(self.lengths), batch_size, shuffle, seed)
        self.noise = noise

    def batches(self) -> list[list[int]]:
        if not self.shuffle:
            return self._split(np.argsort(self.lengths, kind="stable"))
        rng = np.random.default_rng(_epoch_seed(self.seed, self.epoch))
        keys = np.log(self.lengths) + rng.uniform(0.0, self.noise, size=self.num_items)
        batches = self._split(np.argsort(keys, kind="stable"))
        return [batches[i] for i in rng.permutation(len(batches))]


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the padded batch tensors that is padding: 1 - Σ lengths / Σ (B · max length).

    A proxy for the compute spent on padding (the encoder runs on the padded tensor).
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    fed = sum(len(b) * lengths[list(b)].max() for b in batches if len(b))
    valid = sum(lengths[list(b)].sum() for b in batches if len(b))
    return 0.0 if fed == 0 else float(1.0 - valid / fed)


class EpochDataLoader(DataLoader):
    """A DataLoader whose batches are set by `set_epoch` (call it before each epoch)."""

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.batch_sampler.epoch


def resolve_num_workers(num_workers: int) -> int:
    """-1 means one worker per usable CPU core, at most `MAX_AUTO_WORKERS`."""
    if num_workers == -1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return min(MAX_AUTO_WORKERS, cores)
    if num_workers < 0:
        raise ConfigError(f"train.num_workers must be >= -1, got {num_workers}")
    return num_workers


def make_loader(
    samples: Sequence[Sample],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    bucket_by_length: bool = True,
    num_workers: int = 0,
    pin_memory: bool | None = None,
) -> EpochDataLoader:
    """A loader of `collate` batches over `samples`, deterministic for (seed, epoch).

    `pin_memory=None` pins when CUDA is available (faster, asynchronous host-to-device
    copies). With workers, they persist across epochs and prefetch `PREFETCH_FACTOR`
    batches each. The loader has its own torch Generator, so iterating it never draws
    from (and shifts) the global RNG that model initialisation and dropout use.
    """
    dataset = SegmentDataset(samples)
    if len(dataset) == 0:
        raise ValueError("make_loader got no samples: the selected utterances produced no segments")
    if bucket_by_length:
        sampler = LengthBucketSampler(dataset.lengths(), batch_size, shuffle=shuffle, seed=seed)
    else:
        sampler = RandomBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed)
    workers = resolve_num_workers(num_workers)
    extra = {"persistent_workers": True, "prefetch_factor": PREFETCH_FACTOR} if workers > 0 else {}
    return EpochDataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        generator=torch.Generator().manual_seed(_epoch_seed(seed, 0)),
        **extra,
    )


# ---------------------------------------------------------------------------------------
# Class counts and utterance-level pooling


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
