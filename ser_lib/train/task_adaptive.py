"""Task-adaptive encoders: pretrained on an evaluation corpus' own audio, one per fold.

`ser pretrain --task-adaptive --per-fold --manifest M --out DIR` pretrains once per fold of M
(`eval`'s folds: one per speaker, or K-fold groups), each time on M's audio without the fold's test
speakers, into DIR/<fold name>/. Training with `model.encoder=DIR/{fold}` then gives every fold its
own encoder: `{fold}` is replaced by the fold's name (`encoder_for_fold`); `ser probe` takes it too.

Every fold record says what audio its encoder was pretrained on (`model.encoder.encoder_audio`):
corpus-free, task-adaptive (none of the fold's test speakers) or transductive; results and sweep
reports mark the last two, so they are reported apart from corpus-free ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm.auto import tqdm

from ..config import Config
from ..data.folds import Fold, make_folds
from ..data.labels import load_partition
from ..model.encoder import encoder_of_fold, pretraining_record
from .pretrain import STATE_FILE, collect_sources, pretrain


def encoder_for_fold(config: Config, fold: Fold) -> Config:
    """`config` with `{fold}` in `model.encoder` replaced by the fold's name (`model.encoder.encoder_of_fold`)."""
    encoder = encoder_of_fold(config.model.encoder, fold.name)
    return config if encoder == config.model.encoder else dataclasses.replace(
        config, model=dataclasses.replace(config.model, encoder=encoder))


def pretrain_per_fold(config: Config, manifest: Path, out_dir: Path, resume: bool = False,
                      progress: bool = True) -> list[dict]:
    """One task-adaptive encoder per fold of `manifest` (`config.eval`), into out_dir/<fold>, each
    pretrained without the fold's test speakers. With `resume`, finished folds are kept and an
    interrupted one continues. Returns each fold's summary (`pretraining.json`)."""
    folds = make_folds(load_partition(manifest, config.data), config.eval)
    summaries = []
    for fold in tqdm(folds, desc="task-adaptive encoders", unit="fold", disable=not progress):
        fold_out = Path(out_dir) / fold.name
        record = pretraining_record(str(fold_out))
        if resume and record is not None and not (fold_out / STATE_FILE).exists():
            summaries.append(record)
            continue
        sources, described = collect_sources([manifest], [], task_adaptive=True, leave_out_speakers=fold.test_speakers)
        if progress:
            tqdm.write(f"fold {fold.name}: " + "; ".join(described))
        summaries.append(pretrain(config, sources, described, fold_out, resume=resume, task_adaptive=True,
                                  progress=progress))
    return summaries

