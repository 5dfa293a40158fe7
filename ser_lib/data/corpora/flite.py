"""Speech from Flite (Debian's `flite` package): voices built from recordings of real speakers.

eSpeak NG is a formant synthesiser; its voices are rules. Flite's clustergen voices (`slt`,
`rms`, `awb`) are statistical parametric voices trained on the CMU ARCTIC recordings of three
real speakers, and `kal16` is a diphone voice cut from a fourth, so their spectra and
intonation come from people. The unlabelled pretraining speech can be rendered with them
(`pretrain.synthesizer=flite`).

Flite has no library binding on PyPI, so each utterance is one run of the `flite` program
writing a WAV file. Its output is a pure function of its arguments (no random state), which
keeps a corpus byte-identical for a seed.

Prosody is given on eSpeak's scales, as the synthetic corpora plan it (`utterance.Utterance`),
and mapped to Flite's three controls: the F0 mean and standard deviation in Hz, and a duration
stretch. Flite has no word-gap control, so an utterance's `word_gap` is not rendered.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ...errors import ConfigError, SerError

# The 16 kHz voices Flite ships. F0 means measured with openSMILE on one sentence spoken with
# each voice's defaults (eGeMAPS' mean F0 in semitones from 27.5 Hz, converted to Hz).
VOICE_F0_HZ = {"slt": 171.0, "awb": 132.0, "rms": 105.0, "kal16": 88.0}
ESPEAK_DEFAULT_RATE = 175  # words per minute: eSpeak's rate at which Flite is not stretched
SEMITONES_PER_PITCH_STEP = 0.2  # eSpeak pitch 0-100 -> +-10 semitones around the voice's own F0
F0_SPREAD_AT_DEFAULT_RANGE = 0.12  # F0 std / mean at eSpeak pitch range 50
_TIMEOUT_S = 60


def synthesize(text: str, voice: str, *, rate: int = ESPEAK_DEFAULT_RATE, pitch: int = 50,
               pitch_range: int = 50) -> tuple[np.ndarray, int]:
    """Speak `text` with Flite voice `voice` and return (float32 mono audio in [-1, 1], sample rate).

    `rate` is in words per minute, `pitch` and `pitch_range` on eSpeak's 0-100 scale (50 is
    the voice's own level and range)."""
    if voice not in VOICE_F0_HZ:
        raise ConfigError(f"Flite voice must be one of {sorted(VOICE_F0_HZ)}, got {voice!r}")
    if not text.strip():
        raise ConfigError("Flite cannot synthesise an empty text")
    program = shutil.which("flite")
    if program is None:
        raise SerError("the `flite` program is not installed; on Debian or Ubuntu: apt-get install flite")
    f0_mean = VOICE_F0_HZ[voice] * 2 ** ((pitch - 50) * SEMITONES_PER_PITCH_STEP / 12)
    f0_std = f0_mean * F0_SPREAD_AT_DEFAULT_RANGE * pitch_range / 50
    with tempfile.TemporaryDirectory(prefix="ser-flite-") as tmp:
        wav = Path(tmp) / "speech.wav"
        command = [program, "-voice", voice, "--setf", f"int_f0_target_mean={f0_mean:.2f}",
                   "--setf", f"int_f0_target_stddev={f0_std:.2f}",
                   "--setf", f"duration_stretch={ESPEAK_DEFAULT_RATE / rate:.4f}", "-t", text, "-o", str(wav)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S)
        if done.returncode != 0 or not wav.is_file():
            raise SerError(f"flite failed on {text[:40]!r} with voice {voice} (exit {done.returncode}): "
                           f"{done.stderr.strip()[:200]}")
        audio, sample_rate = sf.read(wav, dtype="float32")
    return audio, sample_rate
