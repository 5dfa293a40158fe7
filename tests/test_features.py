"""ser_lib.features against kaldi-native-fbank, an independent Kaldi-compatible implementation."""

import math
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_lib.data.audio import load_audio
from ser_lib.config import FeatureConfig
from ser_lib.errors import ConfigError
from ser_lib.data.features import fbank, num_frames

EMODB_FILE = Path(__file__).resolve().parents[2] / "shared/data/emodb/wav/03a01Fa.wav"
TOLERANCE = 1e-3  # max abs difference of log energies


def kaldi_fbank(waveform: np.ndarray, config: FeatureConfig = FeatureConfig(), rate: int = 16000) -> np.ndarray:
    """The same features from kaldi-native-fbank, fed the very same (unscaled) samples."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.frame_opts.frame_length_ms = config.frame_length_ms
    opts.frame_opts.frame_shift_ms = config.frame_shift_ms
    opts.frame_opts.window_type = "hamming"
    opts.frame_opts.preemph_coeff = config.preemphasis
    opts.frame_opts.remove_dc_offset = config.remove_dc_offset
    opts.mel_opts.num_bins = config.num_mel_bins
    opts.mel_opts.low_freq = config.low_freq
    opts.mel_opts.high_freq = config.high_freq
    opts.use_energy = False
    opts.use_power = True
    opts.use_log_fbank = True
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(rate, np.asarray(waveform, dtype=np.float32).tolist())
    computer.input_finished()
    frames = [computer.get_frame(i) for i in range(computer.num_frames_ready)]
    return np.array(frames, dtype=np.float32).reshape(-1, config.num_mel_bins)


def assert_matches_kaldi(waveform: np.ndarray, config: FeatureConfig = FeatureConfig()) -> None:
    ours = fbank(torch.from_numpy(waveform), config).numpy()
    reference = kaldi_fbank(waveform, config)
    assert ours.shape == reference.shape
    assert ours.shape[0] > 0
    assert np.abs(ours - reference).max() < TOLERANCE


def speech_like(num_samples: int, seed: int, amplitude: float = 0.3) -> np.ndarray:
    """Harmonics of a wandering pitch over coloured noise, with a small DC offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16000
    pitch = 120 + 40 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    noise = np.convolve(rng.standard_normal(num_samples), [1.0, 0.6, 0.3], mode="same")
    signal = voiced + 0.3 * noise + 0.05
    return (amplitude * signal / np.abs(signal).max()).astype(np.float32)


@pytest.mark.emodb
@pytest.mark.skipif(not EMODB_FILE.exists(), reason="../shared/data/emodb is missing")
def test_matches_kaldi_on_real_speech():
    waveform = load_audio(EMODB_FILE).numpy()  # 22.05 kHz -> 16 kHz
    assert_matches_kaldi(waveform)
    assert fbank(torch.from_numpy(waveform)).shape == (197, 40)


@pytest.mark.parametrize("num_samples", [640, 641, 799, 800, 801, 1600, 16000, 7 * 16000 + 37])
def test_matches_kaldi_on_white_noise_of_several_lengths(num_samples):
    rng = np.random.default_rng(num_samples)
    assert_matches_kaldi((0.1 * rng.standard_normal(num_samples)).astype(np.float32))


def test_matches_kaldi_on_speech_like_signal():
    assert_matches_kaldi(speech_like(3 * 16000, seed=0))


@settings(max_examples=40, deadline=None)
@given(
    num_samples=st.integers(640, 4000),
    log_amplitude=st.floats(-4.0, 0.0),
    freqs=st.lists(st.floats(0.0, 8000.0), min_size=1, max_size=3),
    dc=st.floats(-0.5, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_kaldi_on_tones_in_noise(num_samples, log_amplitude, freqs, dc, seed):
    # Noise keeps the spectrum's dynamic range speech-like: on pure tones the far-off bins
    # sit ~90 dB down, where both float32 implementations are only rounding noise.
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16000
    tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    signal = tones + dc + 0.3 * rng.standard_normal(num_samples)
    assert_matches_kaldi((10.0**log_amplitude * signal).astype(np.float32))


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(num_mel_bins=80, frame_length_ms=25.0, frame_shift_ms=10.0),
        FeatureConfig(num_mel_bins=23, low_freq=64.0, high_freq=-400.0, preemphasis=0.0, remove_dc_offset=False),
        FeatureConfig(high_freq=7000.0, frame_shift_ms=20.0),
    ],
)
def test_matches_kaldi_with_other_settings(config):
    assert_matches_kaldi(speech_like(16000 + 333, seed=1), config)


def test_output_shape_and_num_frames():
    for num_samples, expected in [(0, 0), (639, 0), (640, 1), (799, 1), (800, 2), (16000, 97), (112000, 697)]:
        assert num_frames(num_samples) == expected
        features = fbank(torch.randn(num_samples) * 0.1)
        assert features.shape == (expected, 40) and features.dtype == torch.float32


def test_input_shorter_than_a_frame_gives_zero_frames():
    assert fbank(torch.randn(639)).shape == (0, 40)
    assert fbank(torch.randn(3, 100)).shape == (3, 0, 40)
    assert kaldi_fbank(np.random.randn(639).astype(np.float32)).shape == (0, 40)


def test_batch_equals_items_for_any_leading_dims():
    batch = torch.from_numpy(np.stack([speech_like(8000, seed=s) for s in range(6)])).reshape(2, 3, 8000)
    features = fbank(batch)
    assert features.shape == (2, 3, num_frames(8000), 40)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(features[i, j], fbank(batch[i, j]), rtol=0, atol=1e-5)


def test_zero_padded_batch_matches_unpadded_items_on_valid_frames():
    lengths = [8000, 5000, 700]
    items = [torch.from_numpy(speech_like(n, seed=n)) for n in lengths]
    padded = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    features = fbank(padded)
    for item, length, row in zip(items, lengths, features):
        valid = num_frames(length)
        torch.testing.assert_close(row[:valid], fbank(item), rtol=0, atol=1e-5)


def test_float64_input_gives_float64_features_that_agree():
    waveform = speech_like(16000, seed=3)
    features64 = fbank(torch.from_numpy(waveform).double())
    assert features64.dtype == torch.float64
    assert np.abs(features64.numpy() - kaldi_fbank(waveform)).max() < TOLERANCE
    torch.testing.assert_close(features64.float(), fbank(torch.from_numpy(waveform)), rtol=0, atol=TOLERANCE)


def test_waveform_is_used_unscaled():
    # Scaling samples by s adds exactly 2 ln(s) to every (unfloored) log energy.
    waveform = torch.from_numpy(speech_like(8000, seed=4))
    shifted = fbank(waveform * 32768) - 2 * np.log(32768)
    torch.testing.assert_close(shifted, fbank(waveform), rtol=0, atol=1e-3)


def test_constants_are_built_on_the_input_device():
    # The meta device stands in for CUDA: any CPU-only constant would raise a device mismatch.
    features = fbank(torch.empty(2, 16000, device="meta"))
    assert features.device.type == "meta" and features.shape == (2, 97, 40)
    assert fbank(torch.empty(16000, device="meta", dtype=torch.float64)).dtype == torch.float64


def test_silence_is_floored_at_float32_eps():
    features = fbank(torch.zeros(1600))
    assert torch.all(features == np.log(np.finfo(np.float32).eps))


def test_impossible_frequency_range_is_a_config_error():
    with pytest.raises(ConfigError, match="low_freq"):
        fbank(torch.randn(1600), FeatureConfig(low_freq=9000.0))
    with pytest.raises(ConfigError, match="frame_length_ms"):
        fbank(torch.randn(1600), FeatureConfig(frame_length_ms=0.05))


def test_pitch_tracks_a_harmonic_tone():
    from ser_lib.data.features import pitch

    t = torch.arange(16000) / 16000
    generator = torch.Generator().manual_seed(0)
    tone = sum(0.2 / h * torch.sin(2 * math.pi * 180 * h * t) for h in (1, 2, 3))
    tone = tone + 0.001 * torch.randn(16000, generator=generator)
    f0, voicing = pitch(tone)
    assert f0.shape == voicing.shape and len(f0) == 98
    assert abs(f0[10:-10].median().item() - 180) < 3
