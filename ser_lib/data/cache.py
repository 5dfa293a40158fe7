"""On-disk, content-addressed cache of per-utterance artefacts (segment waveforms, filterbanks).

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

import hashlib
import json
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..errors import AudioError
from ..files import atomic_write, project_path

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


def update_digest(digest, tensor: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes to a hashlib digest (any dtype, bf16 included)."""
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy())


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of one tensor's dtype, shape and bytes."""
    digest = hashlib.sha256()
    update_digest(digest, tensor)
    return digest.hexdigest()


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict: every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        update_digest(digest, state[name])
    return digest.hexdigest()


class FeatureCache:
    """Content-addressed store; `hits`, `misses` and `corrupt` count what happened."""

    def __init__(self, cache_dir: str | Path):
        self.root = project_path(cache_dir)  # one cache per project, whatever the working directory
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    def key(self, kind: str, source: str | Path | None, params: Mapping[str, Any], digest: str | None = None) -> str:
        """The entry's key; the source is a file (hashed) or, for artefacts of data that is not
        a file (a segment's samples), the `digest` of that data."""
        if not _KIND.match(kind):
            raise ValueError(f"cache kind {kind!r} must be letters, digits, '_' or '-'")
        if (source is None) == (digest is None):
            raise ValueError("a cache key needs either a source file or a digest, not both")
        payload = canonical_json(
            {"version": CACHE_FORMAT_VERSION, "kind": kind, "source": digest or file_digest(source), "params": params}
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def entry_path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.npz"

    def get_or_compute(
        self,
        kind: str,
        source: str | Path | None,
        params: Mapping[str, Any],
        compute: Callable[[], Value],
        digest: str | None = None,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """The artefact `kind` of `source` made with `params`, from disk or from `compute()`.

        `params` must hold everything besides the file's content that the artefact depends
        on (e.g. start/end and config fields). `compute` returns an array or a dict of named
        arrays (names not starting with '_'); either way the result comes back as CPU
        tensors, the same on a hit as on a miss. Data that is not a file is named by a `digest`
        of its content instead of `source` (see `key`).
        """
        key = self.key(kind, source, params, digest)
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
