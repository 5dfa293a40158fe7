"""Kaldi-compatible log-mel filterbanks (§V-C), batched in torch.

The paper feeds a CNN with 40 log-mel filterbanks over 40 ms Hamming windows every 10 ms.
This follows Kaldi's `compute-fbank-feats` (feature-window.cc, mel-computations.cc) step
by step, so features match kaldi-native-fbank (tests/test_features.py) while running on
any device and on any batch shape:

  frames (snip edges) -> remove DC -> pre-emphasis -> Hamming window -> zero-pad to a power
  of two -> |FFT|^2 -> triangular mel filters (Kaldi mel scale) -> log, floored at float eps.

No dither, and the waveform is used as given: Kaldi tools usually receive int16-scaled
samples, we pass [-1, 1] floats. The two differ by 2 ln(32768) in every bin above the floor.
"""

from __future__ import annotations

import functools
import math

import torch

from ..config import FeatureConfig
from ..errors import ConfigError


def frame_sizes(config: FeatureConfig, sample_rate: int) -> tuple[int, int]:
    """(window length, shift) in samples, truncated like Kaldi's FrameExtractionOptions."""
    length = int(sample_rate * 0.001 * config.frame_length_ms)
    shift = int(sample_rate * 0.001 * config.frame_shift_ms)
    if length < 2 or shift < 1:
        raise ConfigError(
            f"features.frame_length_ms={config.frame_length_ms} / frame_shift_ms={config.frame_shift_ms} "
            f"give a window of {length} and a shift of {shift} samples at {sample_rate} Hz"
        )
    return length, shift


def num_frames(num_samples: int, config: FeatureConfig | None = None, sample_rate: int = 16000) -> int:
    """Frames `fbank` yields for `num_samples` samples (snip edges: whole windows only).

    For a batch zero-padded at the end, the first num_frames(valid samples) frames of each
    item equal the features of the unpadded item, so this gives the padding mask.
    """
    length, shift = frame_sizes(config or FeatureConfig(), sample_rate)
    return 0 if num_samples < length else 1 + (num_samples - length) // shift


def fbank(waveform: torch.Tensor, config: FeatureConfig | None = None, sample_rate: int = 16000) -> torch.Tensor:
    """Log-mel filterbanks of a [..., samples] waveform: [..., frames, num_mel_bins].

    Computed in the waveform's floating dtype (integer input is cast to float32) on its device.
    """
    config = config or FeatureConfig()
    if not waveform.is_floating_point():
        waveform = waveform.to(torch.float32)
    length, shift = frame_sizes(config, sample_rate)
    count = num_frames(waveform.shape[-1], config, sample_rate)
    if count == 0:
        return waveform.new_zeros(*waveform.shape[:-1], 0, config.num_mel_bins)

    # [..., frames, length]; a strided view, copied by the first arithmetic below.
    frames = waveform[..., : (count - 1) * shift + length].unfold(-1, length, shift)
    if config.remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if config.preemphasis != 0.0:
        # Kaldi: x[i] -= p * x[i-1] for i > 0, and x[0] -= p * x[0].
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - config.preemphasis * previous
    frames = frames * _hamming(length, waveform.device, waveform.dtype)

    fft_size = 1 << (length - 1).bit_length()  # next power of two (round_to_power_of_two)
    power = torch.fft.rfft(frames, n=fft_size).abs().square()
    mel = _mel_matrix(config.num_mel_bins, fft_size, sample_rate, config.low_freq, config.high_freq,
                      waveform.device, waveform.dtype)
    energies = power @ mel
    return energies.clamp_min(torch.finfo(torch.float32).eps).log()


@functools.lru_cache(maxsize=32)
def _hamming(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Kaldi's Hamming window: 0.54 - 0.46 cos(2 pi n / (N - 1))."""
    n = torch.arange(length, dtype=torch.float64)
    window = 0.54 - 0.46 * torch.cos(2 * math.pi * n / (length - 1))
    return window.to(device=device, dtype=dtype)


def mel_scale(freq):
    """Kaldi's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)


@functools.lru_cache(maxsize=32)
def _mel_matrix(
    num_bins: int,
    fft_size: int,
    sample_rate: int,
    low_freq: float,
    high_freq: float,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """[fft_size // 2 + 1, num_bins] triangular filters equally spaced on the mel scale.

    As Kaldi's MelBanks: filter b rises from mel_low + b*delta to its centre one delta up and
    falls to zero one delta further; FFT bins are weighted by their own mel value, and the
    Nyquist bin gets no weight.
    """
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq  # <= 0: offset from Nyquist
    if not 0.0 <= low_freq < high <= nyquist:
        raise ConfigError(
            f"features.low_freq={low_freq} and features.high_freq={high_freq} must give "
            f"0 <= low < high <= Nyquist ({nyquist} Hz); got low={low_freq}, high={high}"
        )
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + delta * torch.arange(num_bins, dtype=torch.float64)
    centre, right = left + delta, left + 2 * delta

    bin_mel = mel_scale(torch.arange(fft_size // 2, dtype=torch.float64) * (sample_rate / fft_size))[:, None]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    weights = torch.where(bin_mel <= centre, rising, falling)
    weights = torch.where((bin_mel > left) & (bin_mel < right), weights, 0.0)
    nyquist_row = torch.zeros(1, num_bins, dtype=torch.float64)
    return torch.cat([weights, nyquist_row]).to(device=device, dtype=dtype)


def pitch(waveform: torch.Tensor, sample_rate: int = 16000, min_f0: float = 50.0,
          max_f0: float = 500.0) -> tuple[torch.Tensor, torch.Tensor]:
    """F0 contour in Hz and a voicing score per 10 ms frame, for plots of prosody.

    Kaldi's pitch tracker (Ghahremani et al. 2014) from kaldi-native-fbank: the raw log-pitch
    and the probability-of-voicing feature (higher = more voiced). Not a model input.
    """
    import kaldi_native_fbank as knf

    extract = knf.PitchExtractionOptions()
    extract.samp_freq, extract.min_f0, extract.max_f0 = float(sample_rate), min_f0, max_f0
    process = knf.ProcessPitchOptions()
    process.add_normalized_log_pitch = process.add_delta_pitch = False
    process.add_pov_feature = process.add_raw_log_pitch = True
    # Kaldi's tracker expects int16-scaled magnitudes.
    samples = (waveform.detach().to("cpu", torch.float32) * 32768.0).numpy()
    features = torch.from_numpy(knf.compute_and_process_kaldi_pitch(extract, process, samples))
    return features[:, 1].exp(), features[:, 0]
