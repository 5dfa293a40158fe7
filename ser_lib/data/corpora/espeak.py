"""A minimal ctypes binding to eSpeak NG, the copy bundled in the `espeakng-loader` wheel.

Only what the synthetic corpus needs: synthesise one text into memory with a chosen
voice and prosody (retrieval mode: eSpeak hands the samples to a callback, nothing is
played).

Determinism. eSpeak NG keeps synthesis state in C statics that no API call resets: the
pitch-flutter table position, a flag toggling between two harmonic-spectrum buffers, the
glottal phase. A text's samples would therefore depend on everything the process had
synthesised before it, and a corpus on how its utterances were spread over workers. So
every call opens a fresh instance of the library (dlopen, initialise, synthesise,
terminate, dlclose; about 5 ms) and seeds eSpeak's noise generator: the output is a pure
function of the arguments. `_LOCK` serialises calls, since one callback collects samples.
"""

from __future__ import annotations

import _ctypes
import ctypes
import os
import threading

import numpy as np

from ...errors import ConfigError, SerError

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # retrieval mode in which espeak_Synth returns when done
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4, "word_gap": 7}
# eSpeak clamps out-of-range values silently; we refuse them so a bad value is visible.
_LIMITS = {"rate": (80, 450), "volume": (0, 200), "pitch": (0, 100), "pitch_range": (0, 100), "word_gap": (0, 100)}

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_LOCK = threading.Lock()
_chunks: list[np.ndarray] = []


def _reset_lock_after_fork() -> None:
    # A child forked while another thread held the lock would otherwise deadlock.
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _collect(wav, numsamples, _events) -> int:
    if numsamples > 0 and wav:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    return 0  # 0 = go on synthesising


# Module-level so the C side never calls a garbage-collected trampoline.
_CALLBACK = _SynthCallback(_collect)


def _paths() -> tuple[str, str]:
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except (ImportError, RuntimeError) as exc:
        raise SerError(f"eSpeak NG is not available (install the 'espeakng-loader' package): {exc}") from None


def _open() -> tuple[ctypes.CDLL, int]:
    """Load a fresh library instance and initialise it; returns (library, sample rate)."""
    lib_path, data_path = _paths()
    try:
        lib = ctypes.CDLL(lib_path)
    except OSError as exc:
        raise SerError(f"cannot load the eSpeak NG library {lib_path}: {exc}") from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
    ]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT)
    if sample_rate <= 0:
        _close(lib)
        raise SerError(f"eSpeak NG failed to initialise with data folder {data_path} (code {sample_rate})")
    lib.espeak_SetSynthCallback(_CALLBACK)
    return lib, sample_rate


def _close(lib: ctypes.CDLL) -> None:
    lib.espeak_Terminate()
    _ctypes.dlclose(lib._handle)


def synthesize(
    text: str,
    voice: str = "en",
    *,
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
    word_gap: int = 0,
    rand_seed: int = 0,
) -> tuple[np.ndarray, int]:
    """Speak `text` and return (float32 mono audio in [-1, 1], sample rate).

    `voice` is an eSpeak voice name, optionally with a variant (``"en+m3"``, ``"en+f3"``).
    The prosody arguments are eSpeak's parameters, defaulting to eSpeak's own values:
    `rate` in words per minute, `pitch` and `pitch_range` on eSpeak's 0-100 scale, `volume`
    in percent, `word_gap` an extra pause between words in units of 10 ms. `rand_seed`
    seeds eSpeak's breath noise. The sample rate is eSpeak's (22050 Hz).
    """
    values = {"rate": rate, "volume": volume, "pitch": pitch, "pitch_range": pitch_range, "word_gap": word_gap}
    for name, value in values.items():
        low, high = _LIMITS[name]
        if not low <= int(value) <= high:
            raise ConfigError(f"eSpeak {name} must be in [{low}, {high}], got {value}")
    if not text.strip():
        raise ConfigError("eSpeak cannot synthesise an empty text")
    with _LOCK:
        lib, sample_rate = _open()
        try:
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ConfigError(f"eSpeak NG has no voice {voice!r}")
            for name, value in values.items():
                lib.espeak_SetParameter(_PARAMETERS[name], int(value), 0)
            lib.espeak_ng_SetRandSeed(rand_seed)
            _reseed_libc(rand_seed)
            _chunks.clear()
            encoded = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status == _EE_OK:
                status = lib.espeak_Synchronize()
            if status != _EE_OK:
                raise SerError(f"eSpeak NG failed to synthesise {text[:40]!r} (code {status})")
            audio = np.concatenate(_chunks) if _chunks else np.zeros(0, dtype=np.int16)
        finally:
            _chunks.clear()
            _close(lib)
    return audio.astype(np.float32) / 32768.0, sample_rate


def _reseed_libc(seed: int) -> None:
    # A few places in eSpeak NG call the C library's rand(), whose state is process-wide.
    libc = ctypes.CDLL(None)
    libc.srand.argtypes = [ctypes.c_uint]
    libc.srand(seed & 0xFFFFFFFF)
