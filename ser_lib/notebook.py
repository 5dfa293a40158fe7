"""The setup every notebook starts with: config, corpus, partition and the runs of its folds.

Notebooks 03-05 train runs on the same first `num_folds` speakers into one `runs_dir`, one run
folder per preset (`method.presets`), so a run trained by one notebook is found and resumed by
the next. `notebook_setup` replaces the chain load_config → prepare_corpus → load_partition that
each notebook would otherwise repeat.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .config import Config, load_config
from .data.corpora.prepare import prepare_corpus
from .data.folds import fold_names, speakers_of
from .data.labels import Partition, load_partition
from .method.presets import apply_preset


def with_first_folds(config: Config, parted: Partition, num_folds: int) -> Config:
    """A copy of `config` whose `eval.folds` are the first `num_folds` folds (sorted speakers under
    LOSO; all for 0), unless it names folds already. The demo and the notebooks choose their folds this way."""
    config = copy.deepcopy(config)
    if not config.eval.folds:
        names = fold_names(parted, config.eval)
        config.eval.folds = tuple(names[:num_folds or len(names)])
    return config


@dataclass
class NotebookSetup:
    config: Config  # profile <- overrides <- runtime settings, on the chosen folds
    manifest_path: Path
    parted: Partition  # the corpus's partition (`data.labels.partition`); its rows in `.table`
    runs_dir: Path

    @property
    def speakers(self) -> list[str]:
        return speakers_of(self.parted)

    def config_for(self, preset: str = "paper") -> Config:
        """The config of the run trained for a preset (`method.presets`; the method is "paper")."""
        return apply_preset(self.config, preset)

    def run_dir(self, preset: str = "paper") -> Path:
        return self.runs_dir / preset


def notebook_setup(corpus: str, data_dir: str | Path, root: str | Path | None = None, profile: str = "demo",
                   overrides: Mapping[str, Any] | None = None, num_folds: int = 0,
                   runs_dir: str | Path = "runs/notebooks", runtime: Mapping[str, Any] | None = None) -> NotebookSetup:
    """Build a notebook's config and corpus; `runtime` sets `runtime.*` keys (device, threads),
    which do not change what a run is, so a run resumes whatever device a notebook names."""
    config = load_config(profile, overrides={**(overrides or {}), **(runtime or {})})
    manifest_path = prepare_corpus(corpus, data_dir, root=root, size=config.synth.size, seed=config.synth.seed,
                                   annotator_temperature=config.synth.annotator_temperature,
                                   annotator_confusion=config.synth.annotator_confusion,
                                   progress=False)
    parted = load_partition(manifest_path, config.data)
    return NotebookSetup(with_first_folds(config, parted, num_folds), Path(manifest_path), parted, Path(runs_dir))
