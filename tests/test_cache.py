import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from ser_lib.data.cache import FeatureCache, file_digest
from ser_lib.data.inputs import utterance_inputs
from ser_lib.config import DataConfig, FeatureConfig
from ser_lib.errors import AudioError
from ser_lib.data.features import fbank, num_frames


class Counter:
    """A compute function that counts its calls."""

    def __init__(self, value):
        self.value = value
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.value


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "utt.wav"
    rng = np.random.default_rng(0)
    soundfile.write(str(path), rng.uniform(-0.5, 0.5, 16000 * 10).astype(np.float32), 16000, subtype="FLOAT")
    return path


def leftover_temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


def test_second_call_is_a_hit_and_does_not_compute(tmp_path, source):
    cache = FeatureCache(tmp_path / "cache")
    compute = Counter(np.arange(12, dtype=np.float32).reshape(3, 4))
    first = cache.get_or_compute("fbank", source, {"a": 1}, compute)
    second = cache.get_or_compute("fbank", source, {"a": 1}, compute)
    assert compute.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    assert isinstance(first, torch.Tensor) and first.dtype == second.dtype == torch.float32
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    # A new process (a new cache object on the same folder) hits too.
    again = FeatureCache(tmp_path / "cache")
    again.get_or_compute("fbank", source, {"a": 1}, compute)
    assert compute.calls == 1 and again.hits == 1


def test_entry_lives_under_kind_and_key_prefix(tmp_path, source):
    cache = FeatureCache(tmp_path / "cache")
    cache.get_or_compute("fbank", source, {}, Counter(torch.ones(2)))
    key = cache.key("fbank", source, {})
    assert len(key) == 64
    assert cache.entry_path("fbank", key) == tmp_path / "cache" / "fbank" / key[:2] / f"{key}.npz"
    assert cache.entry_path("fbank", key).is_file()


def test_dict_values_round_trip(tmp_path, source):
    cache = FeatureCache(tmp_path)
    value = {"x": torch.arange(5), "y": np.ones((2, 3), dtype=np.float64)}
    compute = Counter(value)
    for _ in range(2):
        stored = cache.get_or_compute("segments", source, {}, compute)
        assert set(stored) == {"x", "y"} and stored["y"].dtype == torch.float64
        torch.testing.assert_close(stored["x"], torch.arange(5), rtol=0, atol=0)
    assert compute.calls == 1
    with pytest.raises(ValueError, match="must not start with '_'"):
        cache.get_or_compute("segments", source, {"other": 1}, lambda: {"_key": np.zeros(1)})


def test_key_depends_on_params_kind_and_version(tmp_path, source, monkeypatch):
    cache = FeatureCache(tmp_path)
    base = cache.key("fbank", source, {"start": 0.5, "end": None, "bins": 40})
    assert cache.key("fbank", source, {"bins": 40, "end": None, "start": 0.5}) == base  # order-free
    assert cache.key("fbank", source, {"start": 0.5, "end": None, "bins": 80}) != base
    assert cache.key("fbank", source, {"start": 0.6, "end": None, "bins": 40}) != base
    assert cache.key("segments", source, {"start": 0.5, "end": None, "bins": 40}) != base
    monkeypatch.setattr("ser_lib.data.cache.CACHE_FORMAT_VERSION", 99)
    assert cache.key("fbank", source, {"start": 0.5, "end": None, "bins": 40}) != base


def test_changing_a_parameter_recomputes(tmp_path, source):
    cache = FeatureCache(tmp_path)
    compute = Counter(np.zeros(3))
    cache.get_or_compute("fbank", source, {"bins": 40}, compute)
    cache.get_or_compute("fbank", source, {"bins": 80}, compute)
    assert compute.calls == 2 and cache.misses == 2


def test_changing_the_file_content_changes_the_key(tmp_path, source):
    cache = FeatureCache(tmp_path / "cache")
    before = cache.key("fbank", source, {})
    data, rate = soundfile.read(str(source), dtype="float32")
    stat = source.stat()
    soundfile.write(str(source), -data, rate, subtype="FLOAT")  # same size, other bytes
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert source.stat().st_size == stat.st_size
    assert cache.key("fbank", source, {}) != before
    # The same bytes in another file give the same key: the key is about content.
    copy = tmp_path / "copy.wav"
    copy.write_bytes(source.read_bytes())
    assert cache.key("fbank", copy, {}) == cache.key("fbank", source, {})


def test_file_hash_is_memoised_within_the_process(tmp_path, source, monkeypatch):
    reads = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda f, d: reads.append(1) or real(f, d))
    first = file_digest(source)
    assert file_digest(source) == first and len(reads) == 1
    assert first == hashlib.sha256(source.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[: len(b) // 3] + bytes([b[len(b) // 3] ^ 0xFF]) + b[len(b) // 3 + 1 :],  # a flipped data byte
        lambda b: b"",  # empty
        lambda b: b"garbage" * 50,
    ],
    ids=["truncated", "bitflip", "empty", "garbage"],
)
def test_corrupt_entry_is_reported_and_recomputed(tmp_path, source, damage):
    cache = FeatureCache(tmp_path)
    compute = Counter(np.arange(1000, dtype=np.float32))
    cache.get_or_compute("fbank", source, {}, compute)
    entry = cache.entry_path("fbank", cache.key("fbank", source, {}))
    entry.write_bytes(damage(entry.read_bytes()))
    with pytest.warns(UserWarning, match="unreadable.*recomputing"):
        value = cache.get_or_compute("fbank", source, {}, compute)
    assert compute.calls == 2 and cache.corrupt == 1
    torch.testing.assert_close(value, torch.arange(1000, dtype=torch.float32), rtol=0, atol=0)
    cache.get_or_compute("fbank", source, {}, compute)  # repaired: a clean hit
    assert compute.calls == 2 and cache.hits == 1


def test_entry_filed_under_another_key_is_rejected(tmp_path, source):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute("fbank", source, {"bins": 40}, Counter(np.zeros(2)))
    right = cache.entry_path("fbank", cache.key("fbank", source, {"bins": 40}))
    wrong = cache.entry_path("fbank", cache.key("fbank", source, {"bins": 80}))
    wrong.parent.mkdir(parents=True, exist_ok=True)
    wrong.write_bytes(right.read_bytes())
    with pytest.warns(UserWarning, match="does not hold the key"):
        value = cache.get_or_compute("fbank", source, {"bins": 80}, Counter(np.ones(2)))
    torch.testing.assert_close(value, torch.ones(2, dtype=torch.float64), rtol=0, atol=0)


def test_no_temp_files_left_behind_even_when_compute_fails(tmp_path, source):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute("fbank", source, {}, Counter(np.zeros(10)))

    def broken():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("fbank", source, {"x": 1}, broken)
    assert leftover_temp_files(tmp_path) == []
    assert not cache.entry_path("fbank", cache.key("fbank", source, {"x": 1})).exists()


def test_missing_source_and_bad_kind(tmp_path):
    cache = FeatureCache(tmp_path)
    with pytest.raises(AudioError, match="missing.wav does not exist"):
        cache.get_or_compute("fbank", tmp_path / "missing.wav", {}, Counter(np.zeros(1)))
    with pytest.raises(ValueError, match="cache kind"):
        cache.key("../escape", tmp_path, {})


def test_utterance_inputs_are_cached_and_equal_to_direct_computation(tmp_path, source):
    data, features = DataConfig(), FeatureConfig()
    cache = FeatureCache(tmp_path / "cache")
    cached = utterance_inputs(source, data, features, cache=cache)
    assert (cache.hits, cache.misses) == (0, 2)  # one "segments" and one "fbank" entry
    direct = utterance_inputs(source, data, features, cache=None)
    again = utterance_inputs(source, data, features, cache=cache)
    assert (cache.hits, cache.misses) == (2, 2)

    assert len(cached) == 2  # 10 s -> two 5 s segments
    for a, b, c in zip(cached, direct, again):
        assert a.num_valid_samples == b.num_valid_samples == 80000
        assert a.num_valid_frames == num_frames(80000)
        assert a.fbank.shape == (num_frames(80000), 40)
        for x, y in [(a.waveform, b.waveform), (a.fbank, b.fbank), (a.fbank, c.fbank), (a.waveform, c.waveform)]:
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        torch.testing.assert_close(a.fbank, fbank(a.waveform), rtol=0, atol=0)
    assert leftover_temp_files(tmp_path) == []


def test_changing_only_features_reuses_the_segments(tmp_path, source):
    cache = FeatureCache(tmp_path)
    utterance_inputs(source, DataConfig(), FeatureConfig(), cache=cache)
    wider = utterance_inputs(source, DataConfig(), FeatureConfig(num_mel_bins=80), cache=cache)
    assert (cache.hits, cache.misses) == (1, 3)
    assert wider[0].fbank.shape[-1] == 80
    utterance_inputs(source, DataConfig(), FeatureConfig(), 1.0, 2.0, cache)  # another cut
    assert cache.misses == 5
    utterance_inputs(source, DataConfig(), FeatureConfig(), 1, np.float64(2.0), cache)  # same cut
    assert (cache.hits, cache.misses) == (3, 5)


def test_short_cut_is_padded_with_masks(tmp_path, source):
    (segment,) = utterance_inputs(source, DataConfig(), FeatureConfig(), 2.0, 3.0, FeatureCache(tmp_path))
    assert segment.waveform.shape == (24000,) and segment.num_valid_samples == 16000
    assert segment.fbank.shape == (num_frames(24000), 40)
    assert segment.num_valid_frames == num_frames(16000)
    expected = soundfile.read(str(source), dtype="float32")[0][32000:48000]
    np.testing.assert_array_equal(segment.waveform[:16000].numpy(), expected)


def test_data_config_fields_are_in_the_segment_key(tmp_path, source):
    cache = FeatureCache(tmp_path)
    utterance_inputs(source, DataConfig(), FeatureConfig(), cache=cache)
    chunks = dataclasses.replace(DataConfig(), segmentation="chunks")
    segments = utterance_inputs(source, chunks, FeatureConfig(), cache=cache)
    assert cache.hits == 0 and [s.num_valid_samples for s in segments] == [112000, 48000]


def test_a_relative_cache_dir_is_under_the_project_root_whatever_the_working_directory(tmp_path, monkeypatch):
    from ser_lib.data.cache import FeatureCache
    from ser_lib.files import project_root

    monkeypatch.chdir(tmp_path)
    assert FeatureCache("data/cache").root == project_root() / "data" / "cache"
    assert project_root() == Path(__file__).resolve().parents[1] != tmp_path  # this checkout, not the cwd
    assert FeatureCache(tmp_path / "elsewhere").root == tmp_path / "elsewhere"
