"""The corpus of every run of a sweep: the `--manifest` given, or generated from the run's settings.

A grid with `corpus: synth` has no manifest of its own. Each run trains on the synthetic corpus
that its `synth.*` settings describe (size, seed, annotator temperature and confusion), so a grid
over those keys sweeps noise levels and corpus draws like any other setting. The corpora are
generated on first use into `SYNTH_ROOT/<size>-seed<N>-temp<T>-conf<C>/` and reused by every later
sweep: `synth.synthesize_corpus` writes the manifest last, so a folder with a manifest is complete.
`synth.workers` is left out of the name because it does not change the files.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from ..config import Config, SynthConfig
from ..errors import ConfigError
from ..files import project_path
from .grid import Grid

SYNTH_ROOT = "data/synth"  # relative to the project, beside the feature cache (data/cache)
MANIFEST = "manifest.csv"


def synth_corpus_name(synth: SynthConfig) -> str:
    """`small-seed0-temp1.5-conf0`: the folder of the corpus these settings generate."""
    return (f"{synth.size}-seed{synth.seed}-temp{synth.annotator_temperature:g}"
            f"-conf{synth.annotator_confusion:g}")


def synth_corpus(synth: SynthConfig, root: str | Path = SYNTH_ROOT, progress: bool = True) -> Path:
    """The manifest of the synthetic corpus `synth` describes, generated when missing."""
    from ..data.corpora.synth import synthesize_corpus

    folder = project_path(root) / synth_corpus_name(synth)
    if not (folder / MANIFEST).is_file():
        synthesize_corpus(folder, seed=synth.seed, size=synth.size, progress=progress, workers=synth.workers,
                          annotator_temperature=synth.annotator_temperature,
                          annotator_confusion=synth.annotator_confusion)
    return (folder / MANIFEST).resolve()


def run_manifests(grid: Grid, configs: dict[str, Config], manifest: str | Path | None, progress: bool = True,
                  root: str | Path = SYNTH_ROOT) -> dict[str, Path]:
    """Run name -> the manifest it trains on (`configs`: the grid's, by run name). A generated corpus
    is made once however many runs share it; a grid that generates its corpora refuses a
    --manifest, one that does not needs it."""
    if grid.corpus is None:
        if manifest is None:
            raise ConfigError(f"grid {grid.name!r} names no corpus: give the sweep a --manifest "
                              "(or add `corpus: synth` to the grid to generate one per run)")
        path = Path(manifest).resolve()
        return dict.fromkeys(configs, path)
    if manifest is not None:
        raise ConfigError(f"grid {grid.name!r} generates its corpora (corpus: {grid.corpus}); drop --manifest {manifest}")
    settings = {name: config.synth for name, config in configs.items()}
    distinct = {synth_corpus_name(s): s for s in settings.values()}
    made = {name: synth_corpus(s, root, progress=False)
            for name, s in tqdm(distinct.items(), desc="synthetic corpora", unit="corpus", disable=not progress)}
    return {run: made[synth_corpus_name(s)] for run, s in settings.items()}


def corpus_label(grid: Grid, manifest: str | Path | None) -> str:
    """What sweep.json records as the sweep's corpus, and what a resumed sweep must match."""
    if grid.corpus is None:
        return str(Path(manifest).resolve())
    return f"generated per run (corpus: {grid.corpus}; each run's manifest.txt names its own)"
