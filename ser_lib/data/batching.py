"""Batches of segments: length buckets, padding masks, deterministic order per (seed, epoch).

`make_loader` batches segments of similar lengths (`LengthBucketSampler`): segments range
from 1.5 s to 7 s, and random batches would spend a large share of the encoder's compute on
zero padding. Batches depend only on (seed, epoch), so a resumed run sees the same batches
as an uninterrupted one. `collate` pads and records each item's valid length.
"""

from __future__ import annotations

import abc
import math
import os
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError
from .samples import Sample

# Upper bound for num_workers=-1: collation is a cheap padding copy, more processes only cost memory.
MAX_AUTO_WORKERS = 8
# Batches each worker prepares ahead, so the accelerator never waits on a collate.
PREFETCH_FACTOR = 4



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
    if all(s.front_end is not None for s in samples):
        batch["front_end"] = pad_sequence([s.front_end for s in samples], batch_first=True)
    if all(s.hidden_states is not None for s in samples):
        batch["hidden_states"] = pad_sequence([s.hidden_states for s in samples], batch_first=True)
        batch["hidden_lengths"] = torch.tensor([len(s.hidden_states) for s in samples])
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
