"""Leave-one-speaker-out runs (§V-A): every fold trained by Algorithm 1, then aggregated.

With ``resume=True`` finished folds are read back and an interrupted fold continues from its
last checkpoint; folds of one run can be trained by separate jobs (`ser sweep` does) and
aggregated by a final resumed call or `summarize_run`. The run folder's layout is
`analysis.runs`'; the aggregated results are `analysis.results`'.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..analysis import runs
from ..analysis.metrics import aggregate_folds
from ..analysis.results import write_results
from ..config import Config
from ..data.cache import FeatureCache
from ..data.folds import Fold, make_folds
from ..data.labels import Partition, load_partition
from ..runtime import apply_threads
from .algorithm import train_fold


def run_loso(config: Config, manifest_path: str | Path, run_dir: str | Path, resume: bool = False,
             progress: bool = True) -> dict:
    """Train and evaluate every fold of `config.eval.folds` (all folds when empty): one per speaker, or
    `config.eval.kfold` folds of speakers."""
    run_dir = Path(run_dir)
    apply_threads(config.runtime)
    parted = load_partition(manifest_path, config.data)
    folds = make_folds(parted, config.eval)
    runs.record_config(run_dir, config, resume)
    runs.record_manifest(run_dir, manifest_path)
    cache = FeatureCache(config.cache_dir)
    records = []
    for fold in tqdm(folds, desc="folds", disable=not progress or len(folds) == 1):
        fold_dir = runs.fold_dir(run_dir, fold.name)
        if resume and runs.is_finished(fold_dir):
            records.append(runs.read_fold_record(fold_dir))
            continue
        if progress:
            tqdm.write(f"fold {fold.name}: {fold.describe()}")
        records.append(train_any_fold(config, parted, fold, fold_dir, cache, resume=resume, progress=progress))
    return summarize_run(run_dir, config, records)


def train_any_fold(config: Config, parted: Partition, fold: Fold, fold_dir: Path, cache: FeatureCache,
                   resume: bool = False, progress: bool = True) -> dict:
    """One fold by the trainer `config.train.trainer` names: Algorithm 1, or the openSMILE + SVM
    baseline (`method.smile_svm`)."""
    if config.train.trainer == "smile-svm":
        from ..method.smile_svm import train_svm_fold  # opensmile is only imported when used

        return train_svm_fold(config, parted, fold, fold_dir, progress=progress)
    return train_fold(config, parted, fold, fold_dir, cache, resume=resume, progress=progress)


def summarize_run(run_dir: str | Path, config: Config, records: list[dict]) -> dict:
    """Aggregate finished fold records (mean ± std, 95% CI) and write the run's results."""
    predictions = pd.concat([runs.read_fold_predictions(runs.fold_dir(run_dir, r["speaker"])) for r in records])
    summary = aggregate_folds(records)
    return write_results(run_dir, summary, [_without_history(r) for r in records], predictions, config)


def _without_history(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "history"}
