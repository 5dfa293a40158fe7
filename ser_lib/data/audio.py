"""Audio loading and segmentation (§V-C).

`load_audio` reads one utterance as a mono float32 waveform at the model's sample rate
and refuses audio that would silently corrupt training: missing, unreadable or empty
files, NaN/inf samples, silence, and (when mixdown/resampling are switched off) stereo
files or a wrong sample rate. Every refusal is an `AudioError` naming the file.

`segment_bounds` / `cut_and_pad` cut an utterance into segments of at most
`data.max_segment_s` seconds that inherit the utterance's label, and zero-pad short ones
at the end to `data.min_segment_s` seconds (§V-C: 7 s and 1.5 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

from ..config import SEGMENTATIONS, DataConfig
from ..errors import AudioError

# Audio whose peak amplitude is below this (-120 dBFS) is refused as silent. An int16 file
# cannot get there without being all zeros (its smallest step is 2**-15 ~ 3e-5); float files
# below it hold only rounding noise, not speech.
SILENCE_PEAK = 1e-6


def load_audio(
    path: str | Path,
    sample_rate: int = 16000,
    start: float | None = None,
    end: float | None = None,
    *,
    mixdown: bool = True,
    resample: bool = True,
) -> torch.Tensor:
    """Read `path` (or its part from `start` to `end` seconds) as a float32 [samples] tensor.

    Multichannel audio is averaged to mono when `mixdown`, else refused; audio at another
    rate is resampled with soxr (high quality) when `resample`, else refused. Only the
    frames between `start` and `end` are read from disk.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file {path} does not exist")
    if not path.is_file():
        raise AudioError(f"audio file {path} is not a regular file")
    info = audio_info(path)
    if info.frames <= 0:
        raise AudioError(f"audio file {path} is empty (0 samples)")
    if info.channels > 1 and not mixdown:
        raise AudioError(f"audio file {path} has {info.channels} channels, expected mono (data.mixdown is off)")
    if info.samplerate != sample_rate and not resample:
        raise AudioError(
            f"audio file {path} has sample rate {info.samplerate} Hz, expected {sample_rate} Hz "
            f"(data.resample is off)"
        )
    first, stop = _frame_range(path, info, start, end)

    try:
        data = soundfile.read(str(path), start=first, stop=stop, dtype="float32", always_2d=True)[0]
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"audio file {path} is corrupt: reading its samples failed: {exc}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} is empty: no samples could be read (truncated file?)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=1).sum())
        raise AudioError(f"audio file {path} has {bad} NaN or infinite samples")

    waveform = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    peak = float(np.abs(waveform).max())
    if peak < SILENCE_PEAK:
        mixed = f" after mixing down {data.shape[1]} channels" if data.shape[1] > 1 else ""
        raise AudioError(f"audio file {path} is silent{mixed} (peak amplitude {peak:.3g} < {SILENCE_PEAK:g})")
    if info.samplerate != sample_rate:
        waveform = soxr.resample(waveform, info.samplerate, sample_rate, quality="HQ")
    return torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))


def audio_info(path: str | Path):
    """The file's header (`soundfile.info`): rate, channels, frames, duration."""
    try:
        return soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"audio file {path} is corrupt or not a readable audio file: {exc}") from None


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in a file, from its header (manifest builders)."""
    return audio_info(path).duration


def _frame_range(path: Path, info, start: float | None, end: float | None) -> tuple[int, int]:
    """Turn `start`/`end` seconds into a frame range [first, stop) of the file, checked."""
    duration = info.frames / info.samplerate
    first = 0 if start is None else _seconds_to_frame(path, "start", start, info.samplerate)
    stop = info.frames if end is None else _seconds_to_frame(path, "end", end, info.samplerate)
    if first < 0 or first >= info.frames:
        raise AudioError(f"audio file {path}: start {start} s is outside the file (duration {duration:.3f} s)")
    if stop > info.frames:
        raise AudioError(f"audio file {path}: end {end} s is past the end of the file (duration {duration:.3f} s)")
    if stop <= first:
        raise AudioError(f"audio file {path}: end {end} s must be after start {start} s")
    return first, stop


def _seconds_to_frame(path: Path, name: str, seconds: float, rate: int) -> int:
    if not math.isfinite(seconds):
        raise AudioError(f"audio file {path}: {name} time {seconds!r} is not a finite number")
    return round(seconds * rate)


@dataclass
class Segment:
    """One segment of an utterance: `waveform` is zero-padded at the end after
    `num_valid_samples` real samples (the model masks the padding)."""

    waveform: torch.Tensor
    num_valid_samples: int
    start: int  # first sample in the utterance's waveform
    end: int  # one past the last sample


def segment_bounds(
    num_samples: int,
    sample_rate: int,
    max_s: float,
    min_s: float,
    mode: str = "equal",
) -> list[tuple[int, int]]:
    """(start, end) sample ranges that cut an utterance into segments of at most `max_s`.

    mode "equal" (default): n = ceil(duration / max_s) consecutive segments of equal length
    (within one sample), so a 7.5 s utterance becomes two 3.75 s segments rather than
    7 s + a 0.5 s scrap that would be mostly padding.
    mode "chunks": consecutive `max_s` chunks, the last one holding the remainder.
    `min_s` does not change the bounds; it is the length `cut_and_pad` pads up to.
    """
    if num_samples <= 0:
        raise AudioError(f"cannot segment an empty waveform ({num_samples} samples)")
    if mode not in SEGMENTATIONS:
        raise AudioError(f"unknown segmentation mode {mode!r}; choose one of {SEGMENTATIONS}")
    max_len = max(1, round(max_s * sample_rate))
    count = math.ceil(num_samples / max_len)
    if mode == "chunks":
        return [(i * max_len, min((i + 1) * max_len, num_samples)) for i in range(count)]
    return [(i * num_samples // count, (i + 1) * num_samples // count) for i in range(count)]


def cut_and_pad(
    waveform: torch.Tensor,
    sample_rate: int,
    max_s: float,
    min_s: float,
    mode: str = "equal",
) -> list[Segment]:
    """Cut a [samples] waveform with `segment_bounds` and zero-pad each segment at the end
    to at least round(min_s * sample_rate) samples."""
    min_len = round(min_s * sample_rate)
    segments = []
    for start, end in segment_bounds(waveform.shape[-1], sample_rate, max_s, min_s, mode):
        piece = waveform[..., start:end]
        valid = end - start
        if valid < min_len:
            piece = torch.nn.functional.pad(piece, (0, min_len - valid))
        segments.append(Segment(piece.contiguous(), valid, start, end))
    return segments


def segment_seconds(duration_s: float, config: DataConfig) -> list[float]:
    """Lengths in seconds of an utterance's segments as the model gets them: cut by
    `segment_bounds`, short ones padded to `data.min_segment_s` (what `cut_and_pad` yields)."""
    rate = config.sample_rate
    min_len = round(config.min_segment_s * rate)
    bounds = segment_bounds(round(duration_s * rate), rate, config.max_segment_s, config.min_segment_s,
                            config.segmentation)
    return [max(end - start, min_len) / rate for start, end in bounds]
