"""Rendering one utterance: eSpeak NG or Flite -> 16 kHz -> voice quality -> loudness -> pauses and noise floor.

A voice named ``flite:<voice>`` is Flite's (unlabelled speech only), any other eSpeak's. Both
synthesisers' output is a pure function of their input (see `espeak`, `flite`) and the added noise
comes from the utterance's own random stream, so an utterance renders to the same samples in any
process.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import soxr

from ....config import DataConfig
from .. import espeak, flite
from .grammar import sentence
from .streams import Stream, generator
from .utterance import TIER_BOUNDS, Utterance

LEVEL_DBFS = -24.0  # active-speech RMS of a neutral utterance
NOISE_FLOOR_DBFS = -60.0  # white noise everywhere: no digital silence reaches the features
FLITE_PREFIX = "flite:"


def render_utterance(utt: Utterance, sample_rate: int = DataConfig.sample_rate) -> np.ndarray:
    """The utterance as int16 samples at `sample_rate`."""
    speech = _speech_in_tier(utt, sample_rate)
    rng = generator(utt.seed, Stream.RENDER, utt.index)
    speech = _set_level(_voice_quality(speech, utt, sample_rate, rng), LEVEL_DBFS + utt.gain_db)
    lead, tail = (round(s * sample_rate) for s in utt.pad_s)
    audio = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    audio += rng.normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), len(audio))
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def _speech_in_tier(utt: Utterance, sample_rate: int) -> np.ndarray:
    """eSpeak's speech, with the number of words adjusted (a few re-syntheses at most) until the
    duration with pauses lies in the utterance's tier."""
    n_words = utt.n_words
    low, high = TIER_BOUNDS[utt.tier]
    pause_s = sum(utt.pad_s)
    for _ in range(8):
        speech = _speak(utt, n_words, sample_rate)
        speech_s = len(speech) / sample_rate
        if low <= speech_s + pause_s <= high:
            break
        step = round(n_words * (utt.target_s - pause_s) / max(speech_s, 1e-3)) - n_words
        n_words = int(np.clip(n_words + (step or (1 if speech_s + pause_s < low else -1)), 1, len(utt.words)))
    return speech


def _speak(utt: Utterance, n_words: int, sample_rate: int) -> np.ndarray:
    text = sentence(utt.words, n_words, utt.ending)
    if utt.voice.startswith(FLITE_PREFIX):
        audio, rate = flite.synthesize(text, utt.voice.removeprefix(FLITE_PREFIX), rate=utt.rate, pitch=utt.pitch,
                                       pitch_range=utt.pitch_range)
    else:
        audio, rate = espeak.synthesize(text, utt.voice, rate=utt.rate, pitch=utt.pitch,
                                        pitch_range=utt.pitch_range, word_gap=utt.word_gap, rand_seed=utt.seed)
    return soxr.resample(audio.astype(np.float64), rate, sample_rate, quality="HQ")


def _voice_quality(x: np.ndarray, utt: Utterance, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Spectral tilt, breathiness and harshness, each scaled by the utterance's amount."""
    # Tilt: split at ~1.5 kHz with a one-pole low-pass, re-weight the high band
    # (+8 dB at tilt 1, -12 dB at tilt -1).
    pole = np.exp(-2 * np.pi * 1500 / sample_rate)
    low = scipy.signal.lfilter([1 - pole], [1, -pole], x)
    x = low + (1 + (1.5 if utt.tilt > 0 else 0.75) * utt.tilt) * (x - low)
    # Breathiness: band-passed noise following the speech envelope replaces some voicing.
    envelope = np.sqrt(scipy.signal.lfilter([0.01], [1, -0.99], x**2) + 1e-12)
    sos = scipy.signal.butter(2, [800, 4000], btype="bandpass", fs=sample_rate, output="sos")
    aspiration = scipy.signal.sosfilt(sos, rng.standard_normal(len(x))) * envelope
    x = (1 - 0.15 * utt.breath) * x + 0.3 * utt.breath * aspiration
    # Harshness: soft saturation of the peak-normalised signal.
    peak = np.max(np.abs(x)) + 1e-12
    drive = 1 + 5 * utt.drive
    return np.tanh(drive * x / peak) / np.tanh(drive) * peak


def _set_level(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale to an active-speech RMS of `level_dbfs` (10 ms frames within 35 dB of the
    loudest); soft-limit peaks near full scale."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    energy = np.mean(frames**2, axis=1)
    rms = np.sqrt(np.mean(energy[energy > energy.max() * 10 ** (-35 / 10)])) + 1e-12
    return 0.95 * np.tanh(x * (10 ** (level_dbfs / 20) / rms) / 0.95)
