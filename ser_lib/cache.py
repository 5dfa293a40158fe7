"""On-disk cache of per-utterance artefacts (segment waveforms, filterbanks).

An entry's key is a sha256 over everything that determines it: the source file's content
hash, the kind of artefact, the parameters that produced it (start/end, config fields) as
canonical JSON, and `CACHE_FORMAT_VERSION`. A second run with the same inputs therefore
loads instead of recomputing, and any change of audio or settings misses by construction;
nothing is ever invalidated by hand.

Entries are .npz files at `<cache_dir>/<kind>/<key[:2]>/<key>.npz`, written atomically.
The zip format checks a CRC of every array, and each entry stores its own key, so a
truncated, corrupt or misplaced entry is detected, reported with a warning and recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .atomic import atomic_write
from .audio import cut_and_pad, load_audio
from .config import DataConfig, FeatureConfig
from .errors import AudioError
from .features import fbank, num_frames

# Bump when the layout or meaning of stored artefacts changes: old entries then miss.
CACHE_FORMAT_VERSION = 1

Array = np.ndarray | torch.Tensor
Value = Array | Mapping[str, Array]

_SINGLE = "_value"  # member name of an entry that holds one array
_KEY = "_key"  # member holding the entry's own key, checked on load
_KIND = re.compile(r"^[A-Za-z0-9_-]+$")

# (path, size, mtime, inode, device) -> sha256 of the content; one read per file and process.
_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime, inode) within the process."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise AudioError(f"audio file {path} does not exist") from None
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
    if memo not in _DIGESTS:
        with path.open("rb") as handle:
            _DIGESTS[memo] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _DIGESTS[memo]


def canonical_json(params: Mapping[str, Any]) -> str:
    """One spelling per value: sorted keys, no spaces, tuples as lists, no NaN."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=False)


class FeatureCache:
    """Content-addressed store; `hits`, `misses` and `corrupt` count what happened."""

    def __init__(self, cache_dir: str | Path):
        self.root = Path(cache_dir)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    def key(self, kind: str, source: str | Path, params: Mapping[str, Any]) -> str:
        if not _KIND.match(kind):
            raise ValueError(f"cache kind {kind!r} must be letters, digits, '_' or '-'")
        payload = canonical_json(
            {"version": CACHE_FORMAT_VERSION, "kind": kind, "source": file_digest(source), "params": params}
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def entry_path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.npz"

    def get_or_compute(
        self,
        kind: str,
        source: str | Path,
        params: Mapping[str, Any],
        compute: Callable[[], Value],
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """The artefact `kind` of `source` made with `params`, from disk or from `compute()`.

        `params` must hold everything besides the file's content that the artefact depends
        on (e.g. start/end and config fields). `compute` returns an array or a dict of named
        arrays (names not starting with '_'); either way the result comes back as CPU
        tensors, the same on a hit as on a miss.
        """
        key = self.key(kind, source, params)
        path = self.entry_path(kind, key)
        if path.exists():
            try:
                value = _load(path, key)
                self.hits += 1
                return value
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
                self.corrupt += 1
                warnings.warn(f"feature cache entry {path} is unreadable ({exc}); recomputing it", stacklevel=2)
        self.misses += 1
        arrays = _to_numpy(compute())
        with atomic_write(path, "wb") as handle:
            np.savez(handle, **arrays, **{_KEY: _encode(key)})
        return _from_numpy(arrays)


def _to_numpy(value: Value) -> dict[str, np.ndarray]:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        value = {_SINGLE: value}
    elif any(name.startswith("_") for name in value):
        raise ValueError(f"cached array names must not start with '_': {sorted(value)}")
    return {
        name: array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        for name, array in value.items()
    }


def _from_numpy(arrays: Mapping[str, np.ndarray]) -> torch.Tensor | dict[str, torch.Tensor]:
    tensors = {name: torch.from_numpy(np.array(array)) for name, array in arrays.items() if name != _KEY}
    return tensors[_SINGLE] if _SINGLE in tensors else tensors


def _load(path: Path, key: str) -> torch.Tensor | dict[str, torch.Tensor]:
    # Reading every member to its end makes zipfile verify its CRC.
    with np.load(path, allow_pickle=False) as entry:
        arrays = {name: entry[name] for name in entry.files}
    if _KEY not in arrays or bytes(arrays[_KEY]).decode("ascii", "replace") != key:
        raise ValueError("it does not hold the key it is filed under")
    return _from_numpy(arrays)


def _encode(key: str) -> np.ndarray:
    return np.frombuffer(key.encode("ascii"), dtype=np.uint8)


@dataclass
class SegmentFeatures:
    """One segment of an utterance with the model's two inputs.

    `waveform` ([samples], 16 kHz) and `fbank` ([frames, bins]) are zero-padded at the end
    (§V-C minimum length); the first `num_valid_samples` / `num_valid_frames` are real.
    """

    waveform: torch.Tensor
    fbank: torch.Tensor
    num_valid_samples: int
    num_valid_frames: int


def utterance_features(
    path: str | Path,
    start: float | None,
    end: float | None,
    data_config: DataConfig,
    feature_config: FeatureConfig,
    cache: FeatureCache | None = None,
) -> list[SegmentFeatures]:
    """Load an utterance once, cut it into segments and compute their filterbanks.

    With a `cache`, the segment waveforms ("segments") and the filterbanks ("fbank") are
    separate entries, so changing only feature settings reuses the loaded audio.
    """
    rate = data_config.sample_rate
    segment_params = {
        # float(): 1 and 1.0 (or numpy scalars from a manifest) must give the same key.
        "start": None if start is None else float(start),
        "end": None if end is None else float(end),
        "sample_rate": rate,
        "mixdown": data_config.mixdown,
        "resample": data_config.resample,
        "max_segment_s": data_config.max_segment_s,
        "min_segment_s": data_config.min_segment_s,
        "segmentation": data_config.segmentation,
    }

    def make_segments() -> dict[str, torch.Tensor]:
        waveform = load_audio(
            path, rate, start, end, mixdown=data_config.mixdown, resample=data_config.resample
        )
        segments = cut_and_pad(
            waveform, rate, data_config.max_segment_s, data_config.min_segment_s, data_config.segmentation
        )
        arrays = {f"waveform_{i}": segment.waveform for i, segment in enumerate(segments)}
        arrays["num_valid_samples"] = torch.tensor([s.num_valid_samples for s in segments])
        return arrays

    def make_fbanks() -> dict[str, torch.Tensor]:
        return {f"fbank_{i}": fbank(waveform, feature_config, rate) for i, waveform in enumerate(waveforms)}

    if cache is None:
        stored = make_segments()
    else:
        stored = cache.get_or_compute("segments", path, segment_params, make_segments)
    valid = [int(n) for n in stored["num_valid_samples"]]
    waveforms = [stored[f"waveform_{i}"] for i in range(len(valid))]
    if cache is None:
        fbanks = make_fbanks()
    else:
        fbank_params = {**segment_params, "features": dataclasses.asdict(feature_config)}
        fbanks = cache.get_or_compute("fbank", path, fbank_params, make_fbanks)
    return [
        SegmentFeatures(waveforms[i], fbanks[f"fbank_{i}"], valid[i], num_frames(valid[i], feature_config, rate))
        for i in range(len(valid))
    ]
