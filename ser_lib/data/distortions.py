"""Distortions of pretraining crops: room reverberation and additive noise (`pretrain.distortions`).

After PASE+, which pretrains on speech it has reverberated, noised and clipped while its
workers still predict the clean speech's features: the encoder has to see through the room
and the noise. Here the distorted crop is the encoder's input and the targets (filterbank
frames, clusters, prosody) stay those of the clean crop, so every objective becomes a
denoising one. Neither distortion moves the speech in time, so the targets stay aligned.

- **reverb**: the crop is convolved with a room impulse response drawn from a bank simulated
  once per run by pyroomacoustics' image-source method (`room_impulse_responses`): shoebox rooms
  of random size and reverberation time, random source and microphone positions. PASE+ used
  measured responses; none can be downloaded here.
- **noise**: coloured Gaussian noise (a random spectral slope, from brown to white) at a random
  signal-to-noise ratio over the crop's speech. PASE+ used recorded noises; none are available.

Pitch and speed are not distortions here: the generated speech already draws every utterance's
pitch level, pitch range and rate from wide ranges (`synth.unlabelled.PROSODY_RANGES`).

Every draw comes from the caller's generator, so a run's crops are the same on a resume.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
RT60_RANGE_S = (0.2, 0.7)
ROOM_RANGE_M = ((3.0, 8.0), (3.0, 6.0), (2.5, 3.5))
SNR_RANGE_DB = (5.0, 20.0)
SLOPE_RANGE = (-2.0, 0.0)  # noise power ~ f^slope: -2 brown, -1 pink, 0 white
IMPULSE_RESPONSES = 32
_WALL_MARGIN_M = 0.5


def room_impulse_responses(rng: np.random.Generator, count: int = IMPULSE_RESPONSES,
                           sample_rate: int = 16000) -> list[np.ndarray]:
    """`count` simulated room impulse responses, each scaled to a unit direct path (peak 1)."""
    import pyroomacoustics as pra

    responses = []
    for _ in range(count):
        size = [rng.uniform(low, high) for low, high in ROOM_RANGE_M]
        absorption, max_order = pra.inverse_sabine(rng.uniform(*RT60_RANGE_S), size)
        room = pra.ShoeBox(size, fs=sample_rate, materials=pra.Material(absorption), max_order=max_order)
        room.add_source([rng.uniform(_WALL_MARGIN_M, side - _WALL_MARGIN_M) for side in size])
        room.add_microphone([rng.uniform(_WALL_MARGIN_M, side - _WALL_MARGIN_M) for side in size])
        room.compute_rir()
        response = np.asarray(room.rir[0][0], dtype=np.float64)
        responses.append(response / np.max(np.abs(response)))
    return responses


def reverberate(speech: np.ndarray, response: np.ndarray) -> np.ndarray:
    """`speech` in the room: convolved with `response`, cut to its length from the direct path on,
    so the speech does not move in time."""
    delay = int(np.argmax(np.abs(response)))
    wet = scipy.signal.fftconvolve(speech, response)[delay:delay + len(speech)]
    return wet * _rms(speech) / max(_rms(wet), 1e-12)


def add_noise(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`speech` plus coloured noise at a random SNR over the speech's RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(len(speech)))
    frequencies = np.maximum(np.fft.rfftfreq(len(speech)), 1.0 / len(speech))
    noise = np.fft.irfft(spectrum * frequencies ** (rng.uniform(*SLOPE_RANGE) / 2), n=len(speech))
    snr_db = rng.uniform(*SNR_RANGE_DB)
    return speech + noise * _rms(speech) / max(_rms(noise), 1e-12) * 10 ** (-snr_db / 20)


def distort(speech: np.ndarray, kinds: tuple[str, ...], probability: float, responses: list[np.ndarray] | None,
            rng: np.random.Generator) -> np.ndarray:
    """Apply each distortion of `kinds` (`config.DISTORTIONS`), reverb first, with `probability` each."""
    if "reverb" in kinds and rng.random() < probability:
        speech = reverberate(speech, responses[rng.integers(len(responses))])
    if "noise" in kinds and rng.random() < probability:
        speech = add_noise(speech, rng)
    return np.clip(speech, -1.0, 1.0)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))
