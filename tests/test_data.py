import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from ser_lib.data.cache import FeatureCache
from ser_lib.config import DataConfig, FeatureConfig
from ser_lib.data.batching import (
    LengthBucketSampler,
    RandomBatchSampler,
    SegmentDataset,
    collate,
    make_loader,
    padding_fraction,
    resolve_num_workers,
)
from ser_lib.data.samples import Sample, aggregate_by_utterance, build_samples, clear_class_counts
from ser_lib.errors import AudioError, ConfigError
from ser_lib.data.features import num_frames
from ser_lib.data.labels import Partition, partition
from ser_lib.data.manifest import read_manifest, write_manifest

RATE = 16000
CLASSES = DataConfig().classes  # anger, happiness, sadness, neutral


def write_wav(path: Path, seconds: float, rate: int = RATE, freq: float = 220.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    soundfile.write(str(path), audio.astype(np.float32), rate, subtype="FLOAT")


def votes(anger=0, happiness=0, sadness=0, neutral=0, other=0) -> dict:
    return {"votes_anger": anger, "votes_happiness": happiness, "votes_sadness": sadness,
            "votes_neutral": neutral, "votes_other": other}


def true(*values) -> dict:
    return {f"true_{c}": v for c, v in zip(CLASSES, values)}


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Five utterances: a 9 s clear one (2 segments), a 2 s ambiguous one at 22.05 kHz, a
    0.8 s clear one (padded to 1.5 s), a clear 2 s cut (start/end) of the 9 s file, and a
    dropped one whose audio does not even exist."""
    audio = tmp_path / "corpus" / "wav"
    audio.mkdir(parents=True)
    write_wav(audio / "long.wav", 9.0, freq=200.0, seed=1)
    write_wav(audio / "amb.wav", 2.0, rate=22050, freq=330.0, seed=2)
    write_wav(audio / "short.wav", 0.8, freq=440.0, seed=3)
    rows = [
        {"utt_id": "long", "path": "wav/long.wav", "speaker": "s1", "session": "A",
         **votes(anger=3), **true(0.9, 0.1, 0.0, 0.0)},
        {"utt_id": "amb", "path": "wav/amb.wav", "speaker": "s2", "session": "A",
         **votes(happiness=1, sadness=1, other=1), **true(0.0, 0.5, 0.5, 0.0)},
        {"utt_id": "short", "path": "wav/short.wav", "speaker": "s1", "session": "",
         **votes(neutral=2, happiness=1), **true(0.0, 0.2, 0.0, 0.8)},
        {"utt_id": "cut", "path": "wav/long.wav", "speaker": "s2", "session": "B", "start": 1.0, "end": 3.0,
         **votes(sadness=2), **{f"true_{c}": math.nan for c in CLASSES}},
        {"utt_id": "drop", "path": "wav/missing.wav", "speaker": "s2", "session": "B",
         **votes(other=3), **true(0.25, 0.25, 0.25, 0.25)},
    ]
    return write_manifest(pd.DataFrame(rows), tmp_path / "corpus" / "manifest.csv")


def parted_of(manifest: Path, data_config: DataConfig | None = None) -> Partition:
    return partition(read_manifest(manifest), data_config or DataConfig())


def build(manifest: Path, cache=None, **kwargs) -> list[Sample]:
    return build_samples(parted_of(manifest), DataConfig(), FeatureConfig(), cache, progress=False, **kwargs)


def by_id(samples: list[Sample]) -> dict[str, Sample]:
    return {s.sample_id: s for s in samples}


def test_samples_are_segments_with_inherited_labels(corpus):
    samples = build(corpus)
    assert [s.sample_id for s in samples] == ["long#0", "long#1", "amb#0", "short#0", "cut#0"]
    assert not any(s.utt_id == "drop" for s in samples)
    found = by_id(samples)

    # 9 s -> two equal 4.5 s segments, each labelled like the utterance.
    for k in (0, 1):
        s = found[f"long#{k}"]
        assert s.waveform.shape == (72000,) and s.num_valid_samples == 72000
        assert s.subset == "clear" and s.speaker == "s1" and s.session == "A"
        assert s.y_soft.dtype == torch.float32 and s.y_soft.tolist() == [1.0, 0.0, 0.0, 0.0]
        torch.testing.assert_close(s.true, torch.tensor([0.9, 0.1, 0.0, 0.0]))
        assert s.fbank.shape == (num_frames(72000), 40) and s.num_valid_frames == num_frames(72000)

    # 22.05 kHz file resampled to 16 kHz; eq. 5 soft label over the target votes only.
    amb = found["amb#0"]
    assert amb.subset == "ambiguous" and amb.ambiguous
    assert amb.waveform.shape == (32000,) and amb.waveform.dtype == torch.float32
    torch.testing.assert_close(amb.y_soft, torch.tensor([0.0, 0.5, 0.5, 0.0]))

    # 0.8 s -> zero-padded at the end to 1.5 s; the valid counts still describe the real audio.
    short = found["short#0"]
    assert short.waveform.shape == (24000,) and short.num_valid_samples == 12800
    assert short.waveform[:12800].abs().max() > 0.1 and short.waveform[12800:].abs().max() == 0
    assert short.fbank.shape == (num_frames(24000), 40) and short.num_valid_frames == num_frames(12800)
    assert short.session is None and short.y_soft.tolist() == [0.0, 0.0, 0.0, 1.0]

    # start/end cut of the long file; a row without a true distribution gets None.
    cut = found["cut#0"]
    assert cut.waveform.shape == (32000,) and cut.true is None
    long_audio, _ = soundfile.read(str(corpus.parent / "wav" / "long.wav"), dtype="float32")
    torch.testing.assert_close(cut.waveform, torch.from_numpy(long_audio[16000:48000]))


def test_subset_selection(corpus):
    assert {s.utt_id for s in build(corpus, subsets=("clear",))} == {"long", "short", "cut"}
    assert [s.sample_id for s in build(corpus, subsets=("ambiguous",))] == ["amb#0"]
    with pytest.raises(ValueError, match="dropped"):
        build(corpus, subsets=("clear", "dropped"))
    with pytest.raises(ValueError, match="subsets"):
        build(corpus, subsets=("clean",))


def test_partition_for_other_classes_is_refused(corpus):
    three = DataConfig(classes=("anger", "happiness", "sadness"))
    with pytest.raises(ConfigError, match="classes"):
        build_samples(parted_of(corpus, three), DataConfig(), FeatureConfig(), None, progress=False)


def test_second_build_hits_the_cache_and_gives_the_same_samples(corpus, tmp_path):
    first_cache = FeatureCache(tmp_path / "cache")
    first = build(corpus, first_cache)
    assert first_cache.hits == 0 and first_cache.misses == 8  # (segments, fbank) x 4 utterances
    second_cache = FeatureCache(tmp_path / "cache")
    second = build(corpus, second_cache)
    assert second_cache.hits == 8 and second_cache.misses == 0
    uncached = build(corpus, None)
    for a, b, c in zip(first, second, uncached):
        assert a.sample_id == b.sample_id == c.sample_id
        torch.testing.assert_close(a.waveform, b.waveform, rtol=0, atol=0)
        torch.testing.assert_close(a.fbank, b.fbank, rtol=0, atol=0)
        torch.testing.assert_close(a.fbank, c.fbank, rtol=0, atol=0)


def test_corrupt_audio_names_file_and_utterance(corpus):
    (corpus.parent / "wav" / "amb.wav").write_bytes(b"RIFF this is not audio at all" * 10)
    with pytest.raises(AudioError) as info:
        build(corpus)
    message = str(info.value)
    assert "'amb'" in message and "amb.wav" in message
    # Only the clear subset: the broken ambiguous file is never opened.
    assert len(build(corpus, subsets=("clear",))) == 4


def test_collate_pads_and_reports_lengths(corpus):
    samples = build(corpus)
    dataset = SegmentDataset(samples)
    assert len(dataset) == 5 and dataset.lengths() == [72000, 72000, 32000, 24000, 32000]
    batch = collate([dataset[i] for i in (3, 0, 2)])  # short, long#0, amb

    assert batch["waveform"].shape == (3, 72000) and batch["waveform"].dtype == torch.float32
    assert batch["waveform_lengths"].tolist() == [24000, 72000, 32000]
    assert batch["audio_lengths"].tolist() == [12800, 72000, 32000]
    assert batch["waveform"][0, 24000:].abs().max() == 0
    torch.testing.assert_close(batch["waveform"][2, :32000], samples[2].waveform)

    frames = num_frames(72000)
    assert batch["fbank"].shape == (3, frames, 40)
    assert batch["fbank_lengths"].tolist() == [num_frames(24000), frames, num_frames(32000)]
    assert batch["audio_frame_lengths"].tolist() == [num_frames(12800), frames, num_frames(32000)]
    assert batch["fbank"][0, num_frames(24000):].abs().max() == 0
    torch.testing.assert_close(batch["fbank"][1], samples[0].fbank)

    assert batch["y_soft"].shape == (3, 4) and batch["y_soft"].dtype == torch.float32
    assert batch["ambiguous"].tolist() == [False, False, True]
    assert batch["index"].dtype == torch.long and batch["index"].tolist() == [3, 0, 2]
    assert batch["sample_ids"] == ["short#0", "long#0", "amb#0"]
    assert batch["utt_ids"] == ["short", "long", "amb"]
    assert batch["true"].shape == (3, 4)
    assert "true" not in collate([dataset[4], dataset[0]])  # "cut" has no true distribution


def test_loader_yields_every_sample_once(corpus):
    samples = build(corpus)
    loader = make_loader(samples, 2, shuffle=True, seed=3, pin_memory=False)
    assert len(loader) == 3
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        indices = sorted(i for batch in loader for i in batch["index"].tolist())
        assert indices == list(range(5))
    # Evaluation order: sorted by length, deterministic.
    ordered = make_loader(samples, 2, shuffle=False, seed=0, pin_memory=False)
    lengths = [length for batch in ordered for length in batch["waveform_lengths"].tolist()]
    assert lengths == sorted(lengths)


def test_loader_does_not_touch_the_global_rng(corpus):
    loader = make_loader(build(corpus), 2, shuffle=True, seed=0, pin_memory=False)
    state = torch.get_rng_state()
    for epoch in range(2):
        loader.set_epoch(epoch)
        list(loader)
    assert torch.equal(state, torch.get_rng_state())


def test_resolve_num_workers():
    assert resolve_num_workers(0) == 0 and resolve_num_workers(3) == 3
    assert resolve_num_workers(-1) in range(1, 9)
    with pytest.raises(ConfigError):
        resolve_num_workers(-2)


def synthetic_lengths(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Segment lengths shaped like IEMOCAP's: many short ones padded to 1.5 s, up to 7 s."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(3.5), 0.6, n), 1.5, 7.0)
    return np.round(seconds * RATE).astype(int)


@pytest.mark.parametrize("make", [
    lambda lengths, shuffle, seed: LengthBucketSampler(lengths, 16, shuffle=shuffle, seed=seed),
    lambda lengths, shuffle, seed: RandomBatchSampler(len(lengths), 16, shuffle=shuffle, seed=seed),
], ids=["bucket", "random"])
def test_samplers_are_deterministic_per_seed_and_epoch_and_cover_exactly(make):
    lengths = synthetic_lengths(1000)  # 62 full batches and one of 8
    sampler = make(lengths, True, 7)
    batches = {}
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch)
        batches[epoch] = list(sampler)
        assert len(batches[epoch]) == len(sampler) == 63
        assert sorted(len(b) for b in batches[epoch])[:2] == [8, 16]
        assert sorted(i for b in batches[epoch] for i in b) == list(range(1000))
    assert batches[0] != batches[1] != batches[2]

    # A fresh sampler (a resumed run) set to the same epoch gives the same batches.
    resumed = make(lengths, True, 7)
    resumed.set_epoch(1)
    assert list(resumed) == batches[1]
    other_seed = make(lengths, True, 8)
    other_seed.set_epoch(1)
    assert list(other_seed) != batches[1]

    # Without shuffling the epoch does not matter.
    fixed = make(lengths, False, 7)
    first = list(fixed)
    fixed.set_epoch(5)
    assert list(fixed) == first


def test_bucketing_cuts_padding():
    lengths = synthetic_lengths()
    random_batches = RandomBatchSampler(len(lengths), 16, shuffle=True, seed=0)
    bucketed = LengthBucketSampler(lengths, 16, shuffle=True, seed=0)
    random_padding = padding_fraction(list(random_batches), lengths)
    bucket_padding = padding_fraction(list(bucketed), lengths)
    assert random_padding > 0.3
    assert bucket_padding < 0.05
    # Batches still change from epoch to epoch (the noise mixes similar lengths).
    bucketed.set_epoch(1)
    assert padding_fraction(list(bucketed), lengths) < 0.05


def test_padding_fraction():
    assert padding_fraction([[0, 1], [2]], [10, 10, 5]) == 0.0
    assert padding_fraction([[0, 1]], [10, 30]) == pytest.approx(1 - 40 / 60)


def test_sampler_rejects_bad_input():
    with pytest.raises(ValueError):
        LengthBucketSampler([100, 0, 50], 4)
    with pytest.raises(ValueError):
        LengthBucketSampler([100, 50], 0)


def fake_sample(sample_id: str, subset: str, label: list[float]) -> Sample:
    return Sample(sample_id, sample_id.split("#")[0], "s", None, subset, torch.tensor(label), None,
                  torch.zeros(24000), 24000, torch.zeros(num_frames(24000), 40), num_frames(24000))


def test_clear_class_counts_count_clear_segments():
    samples = [
        fake_sample("a#0", "clear", [1, 0, 0]), fake_sample("a#1", "clear", [1, 0, 0]),
        fake_sample("b#0", "clear", [0, 0, 1]),
        fake_sample("c#0", "ambiguous", [0, 0.5, 0.5]),
    ]
    assert clear_class_counts(samples, 3).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="a#0"):
        clear_class_counts(samples, 4)


def test_aggregate_by_utterance_means_segment_probabilities():
    ids = ["u1", "u2", "u1", "u3", "u1"]
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.3, 0.7]])
    utt_ids, means = aggregate_by_utterance(ids, probs)
    assert utt_ids == ["u1", "u2", "u3"]
    torch.testing.assert_close(means, torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]]))
    utt_ids, means_np = aggregate_by_utterance(ids, probs.numpy())
    assert isinstance(means_np, np.ndarray)
    np.testing.assert_allclose(means_np, means.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        aggregate_by_utterance(ids[:3], probs)
