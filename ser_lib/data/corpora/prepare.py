"""One entry point from a corpus name to a manifest, for the CLI, the demo and the notebooks.

- ``synthetic``: the embedded corpus, generated into `data_dir` unless its manifest exists;
- ``emodb``: a manifest built from an EmoDB folder (`root`) into `data_dir`;
- anything else: the path of an existing manifest (IEMOCAP or your own corpus).
"""

from __future__ import annotations

from pathlib import Path

from ...config import SynthConfig
from ...errors import ManifestError

MANIFEST_NAME = "manifest.csv"


def prepare_corpus(corpus: str, data_dir: str | Path, root: str | Path | None = None,
                   size: str = "small", seed: int = 0, progress: bool = True,
                   annotator_temperature: float = SynthConfig.annotator_temperature,
                   annotator_confusion: float = SynthConfig.annotator_confusion) -> Path:
    """Return the manifest path of `corpus`, building it on first use."""
    data_dir = Path(data_dir)
    manifest = data_dir / MANIFEST_NAME
    if corpus == "synthetic":
        if not manifest.exists():
            from .synth import synthesize_corpus

            synthesize_corpus(data_dir, seed=seed, size=size, progress=progress,
                              annotator_temperature=annotator_temperature, annotator_confusion=annotator_confusion)
        return manifest
    if corpus == "emodb":
        if root is None:
            raise ManifestError("corpus 'emodb' needs root= the EmoDB folder (with wav/ and erkennung.txt)")
        if not manifest.exists():
            from .emodb import build_emodb_manifest

            build_emodb_manifest(root, manifest)
        return manifest
    path = Path(corpus)
    if not path.is_file():
        raise ManifestError(f"corpus {corpus!r} is neither 'synthetic', 'emodb' nor an existing manifest file")
    return path
