"""Reading corpus metadata written before UTF-8 was the norm (EmoDB's table, IEMOCAP's files)."""

from __future__ import annotations

from pathlib import Path

from ...errors import CorpusError


def read_legacy_text(path: Path, what: str) -> tuple[str, str]:
    """(text, encoding) of a UTF-8 or Latin-1 file; `what` names the file in errors.

    UTF-8 is tried first: Latin-1 decodes any byte, while a Latin-1 text with non-ASCII
    characters (EmoDB's non-breaking spaces, 0xA0) is never valid UTF-8, so the two cannot be
    confused. A NUL byte means UTF-16 or a binary file, which neither decoding would catch.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the {what}: {exc}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"{path}: byte {nul} is NUL: the {what} is not Latin-1 or UTF-8 text "
                          "(UTF-16 or a binary file?)")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"
