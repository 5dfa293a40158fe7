import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_lib.data.audio import SILENCE_PEAK, cut_and_pad, load_audio, segment_bounds, segment_seconds
from ser_lib.config import DataConfig, load_config
from ser_lib.errors import AudioError, ConfigError

EMODB_FILE = Path(__file__).resolve().parents[2] / "shared/data/emodb/wav/03a01Fa.wav"


def write(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> Path:
    soundfile.write(str(path), data, rate, subtype=subtype)
    return path


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_reads_mono_float_file_exactly(tmp_path):
    data = np.random.default_rng(0).uniform(-0.9, 0.9, 8000).astype(np.float32)
    waveform = load_audio(write(tmp_path / "a.wav", data))
    assert waveform.dtype == torch.float32 and waveform.shape == (8000,)
    np.testing.assert_array_equal(waveform.numpy(), data)


def test_int16_file_is_scaled_to_unit_range(tmp_path):
    data = np.array([0, 16384, -32768, 32767] * 100, dtype=np.int16)
    soundfile.write(str(tmp_path / "a.wav"), data, 16000, subtype="PCM_16")
    waveform = load_audio(tmp_path / "a.wav")
    np.testing.assert_allclose(waveform[:4].numpy(), [0.0, 0.5, -1.0, 32767 / 32768])


def test_resampling_from_22050_gives_the_right_length_and_pitch(tmp_path):
    data = tone(2.0, 22050, freq=440.0)
    waveform = load_audio(write(tmp_path / "a.wav", data, 22050), 16000)
    assert waveform.shape == (round(len(data) * 16000 / 22050),) == (32000,)
    spectrum = np.abs(np.fft.rfft(waveform.numpy()))
    assert np.argmax(spectrum) * 16000 / len(waveform) == pytest.approx(440.0, abs=1.0)
    assert float(waveform.abs().max()) == pytest.approx(0.5, abs=0.01)


def test_mixdown_averages_the_channels(tmp_path):
    rng = np.random.default_rng(1)
    left, right = rng.uniform(-0.5, 0.5, (2, 4000)).astype(np.float32)
    waveform = load_audio(write(tmp_path / "s.wav", np.stack([left, right], axis=1)))
    np.testing.assert_allclose(waveform.numpy(), (left + right) / 2, atol=1e-7)


def test_start_and_end_cut_the_right_samples(tmp_path):
    data = np.random.default_rng(2).uniform(-0.5, 0.5, 32000).astype(np.float32)
    path = write(tmp_path / "a.wav", data)
    np.testing.assert_array_equal(load_audio(path, start=0.5, end=1.25).numpy(), data[8000:20000])
    np.testing.assert_array_equal(load_audio(path, start=1.5).numpy(), data[24000:])
    np.testing.assert_array_equal(load_audio(path, end=0.25).numpy(), data[:4000])
    np.testing.assert_array_equal(load_audio(path, start=0.0, end=2.0).numpy(), data)


def test_start_and_end_are_applied_before_resampling(tmp_path):
    data = tone(3.0, 22050)
    path = write(tmp_path / "a.wav", data, 22050)
    part = load_audio(path, 16000, start=1.0, end=2.5)
    assert part.shape == (24000,)


@pytest.mark.emodb
@pytest.mark.skipif(not EMODB_FILE.exists(), reason="../shared/data/emodb is missing")
def test_emodb_file_loads_at_16k():
    assert soundfile.info(str(EMODB_FILE)).samplerate == 22050
    waveform = load_audio(EMODB_FILE)
    assert waveform.shape == (32000,) and 0.01 < float(waveform.abs().max()) <= 1.0


# --- errors: each names the file and the problem --------------------------------------


def assert_audio_error(path: Path, problem: str, **kwargs) -> None:
    with pytest.raises(AudioError) as info:
        load_audio(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and problem in message, message


def test_missing_file(tmp_path):
    assert_audio_error(tmp_path / "nope.wav", "does not exist")
    (tmp_path / "dir.wav").mkdir()
    assert_audio_error(tmp_path / "dir.wav", "is not a regular file")


def test_garbage_bytes_named_wav(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not a RIFF file at all" * 10)
    assert_audio_error(path, "corrupt")


def test_truncated_header(tmp_path):
    path = write(tmp_path / "t.wav", tone(1.0, 16000))
    path.write_bytes(path.read_bytes()[:20])
    assert_audio_error(path, "corrupt")


def test_empty_wav(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    assert_audio_error(path, "empty (0 samples)")


def test_all_zero_wav(tmp_path):
    path = tmp_path / "zero.wav"
    soundfile.write(str(path), np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    assert_audio_error(path, "is silent")


def test_peak_below_silence_threshold_is_silent(tmp_path):
    quiet = write(tmp_path / "quiet.wav", np.full(1000, SILENCE_PEAK / 2, dtype=np.float32))
    assert_audio_error(quiet, "is silent")
    audible = write(tmp_path / "audible.wav", np.full(1000, SILENCE_PEAK * 2, dtype=np.float32))
    assert load_audio(audible).shape == (1000,)


def test_channels_cancelling_out_are_silent_after_mixdown(tmp_path):
    left = tone(0.5, 16000)
    path = write(tmp_path / "phase.wav", np.stack([left, -left], axis=1))
    assert_audio_error(path, "silent after mixing down 2 channels")


def test_nan_and_inf_samples(tmp_path):
    data = tone(0.5, 16000)
    data[[10, 20]] = np.nan
    assert_audio_error(write(tmp_path / "nan.wav", data), "2 NaN or infinite samples")
    data = tone(0.5, 16000)
    data[5] = np.inf
    assert_audio_error(write(tmp_path / "inf.wav", data), "1 NaN or infinite samples")


def test_stereo_without_mixdown(tmp_path):
    path = write(tmp_path / "stereo.wav", np.stack([tone(0.5, 16000)] * 2, axis=1))
    assert_audio_error(path, "2 channels, expected mono", mixdown=False)


def test_wrong_rate_without_resampling(tmp_path):
    path = write(tmp_path / "8k.wav", tone(0.5, 8000), 8000)
    assert_audio_error(path, "sample rate 8000 Hz, expected 16000 Hz", resample=False)
    assert load_audio(path, resample=True).shape == (8000,)


@pytest.mark.parametrize(
    "start, end, problem",
    [
        (-0.1, None, "outside the file"),
        (2.0, None, "outside the file"),
        (None, 2.5, "past the end"),
        (1.0, 1.0, "must be after start"),
        (1.0, 0.5, "must be after start"),
        (float("nan"), None, "not a finite number"),
    ],
)
def test_start_end_out_of_range(tmp_path, start, end, problem):
    path = write(tmp_path / "a.wav", tone(2.0, 16000))
    assert_audio_error(path, problem, start=start, end=end)


# --- segmentation -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    num_samples=st.integers(1, 2_000_000),
    max_s=st.floats(0.5, 10.0),
    mode=st.sampled_from(["equal", "chunks"]),
)
def test_segments_tile_the_utterance_and_respect_the_maximum(num_samples, max_s, mode):
    bounds = segment_bounds(num_samples, 16000, max_s, min(1.5, max_s), mode)
    max_len = round(max_s * 16000)
    assert len(bounds) == math.ceil(num_samples / max_len)
    assert bounds[0][0] == 0 and bounds[-1][1] == num_samples
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    lengths = [end - start for start, end in bounds]
    assert all(0 < n <= max_len for n in lengths)
    if mode == "equal":
        assert max(lengths) - min(lengths) <= 1
    else:
        assert all(n == max_len for n in lengths[:-1])


def test_equal_segmentation_avoids_a_scrap_at_the_end():
    rate = 16000
    assert segment_bounds(7 * rate, rate, 7.0, 1.5) == [(0, 7 * rate)]
    assert segment_bounds(int(7.5 * rate), rate, 7.0, 1.5) == [(0, 60000), (60000, 120000)]
    assert segment_bounds(int(7.5 * rate), rate, 7.0, 1.5, "chunks") == [(0, 112000), (112000, 120000)]


def test_empty_waveform_cannot_be_segmented():
    with pytest.raises(AudioError, match="empty waveform"):
        segment_bounds(0, 16000, 7.0, 1.5)


def test_short_utterance_is_padded_at_the_end():
    waveform = torch.rand(16000) + 0.1
    (segment,) = cut_and_pad(waveform, 16000, 7.0, 1.5)
    assert segment.waveform.shape == (24000,) and segment.num_valid_samples == 16000
    torch.testing.assert_close(segment.waveform[:16000], waveform)
    assert torch.all(segment.waveform[16000:] == 0)


@pytest.mark.parametrize("mode", ["equal", "chunks"])
def test_long_utterance_segments_reassemble_to_the_original(mode):
    waveform = torch.randn(20 * 16000 + 123)
    segments = cut_and_pad(waveform, 16000, 7.0, 1.5, mode)
    assert len(segments) == 3
    for segment in segments:
        assert 24000 <= segment.waveform.shape[0] <= 7 * 16000
        assert segment.num_valid_samples == segment.end - segment.start
    rebuilt = torch.cat([s.waveform[: s.num_valid_samples] for s in segments])
    torch.testing.assert_close(rebuilt, waveform, rtol=0, atol=0)


def test_chunk_mode_pads_a_short_tail():
    segments = cut_and_pad(torch.randn(int(7.5 * 16000)), 16000, 7.0, 1.5, "chunks")
    assert [s.num_valid_samples for s in segments] == [112000, 8000]
    assert segments[1].waveform.shape == (24000,)


# --- config fields --------------------------------------------------------------------


def test_config_fields_for_audio():
    config = load_config(overrides=["data.mixdown=false", "data.resample=no", "data.segmentation=chunks"])
    assert config.data.mixdown is False and config.data.resample is False
    assert config.data.segmentation == "chunks"
    assert DataConfig().mixdown is True and DataConfig().resample is True
    with pytest.raises(ConfigError, match="data.segmentation"):
        load_config(overrides={"data.segmentation": "halves"})
    with pytest.raises(ConfigError, match="data.mixdown"):
        load_config(overrides=["data.mixdown=maybe"])


@pytest.mark.parametrize("seconds, segmentation", [(0.4, "equal"), (3.0, "equal"), (7.5, "equal"), (7.5, "chunks"),
                                                   (15.2, "chunks")])
def test_segment_seconds_are_the_lengths_cut_and_pad_yields(seconds, segmentation):
    config = DataConfig(segmentation=segmentation)
    waveform = torch.zeros(round(seconds * config.sample_rate))
    segments = cut_and_pad(waveform, config.sample_rate, config.max_segment_s, config.min_segment_s, segmentation)
    assert segment_seconds(seconds, config) == [len(s.waveform) / config.sample_rate for s in segments]
