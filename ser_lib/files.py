"""Files the workbench writes: atomically, and JSON with numpy values made plain.

A write goes to a temporary file in the destination's folder and is moved into place
with `os.replace`, which is atomic on POSIX and Windows. An interrupted run therefore
leaves either the old file or none, never a half-written one that a later run trusts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np


def project_root() -> Path:
    """The checkout that holds `ser_lib` (the folder with its pyproject.toml); for an installed,
    non-editable package, the working directory."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").exists() else Path.cwd()


def project_path(path: str | os.PathLike) -> Path:
    """A configured path: absolute as given, relative to the project root otherwise, so the CLI,
    the demo and notebooks (whose working directory is notebooks/) find the same folder."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success move it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, tuples as lists, paths as text,
    NaN and infinities as None (JSON has no spelling for them)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    """`jsonable(value)` as indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(jsonable(value), indent=2, allow_nan=False) + "\n")
