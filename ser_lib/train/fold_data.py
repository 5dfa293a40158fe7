"""A fold's training data: its splits (`data.folds.split_partition`) as segments with features, and the
training targets of its method (`method.targets`, `method.aggregation`): `prepare_fold`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import Config
from ..data.annotations import ANNOTATIONS_CSV, read_annotations
from ..data.cache import FeatureCache
from ..data.folds import Fold, split_partition
from ..data.labels import AMBIGUOUS, CLEAR, Partition
from ..data.samples import Sample, build_samples
from ..errors import ConfigError
from ..method.aggregation import AGGREGATORS, aggregated_soft_labels, with_aggregated_labels
from ..method.targets import training_targets


@dataclass
class FoldData:
    """The segments of one fold (see `split_partition`)."""

    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    test_ambiguous: list[Sample]
    classes: tuple[str, ...]

    @property
    def train_clear(self) -> list[Sample]:
        return [s for s in self.train if s.subset == CLEAR]

    @property
    def train_ambiguous(self) -> list[Sample]:
        return [s for s in self.train if s.subset == AMBIGUOUS]

    @property
    def every_sample(self) -> list[Sample]:
        return self.train + self.validation + self.test + self.test_ambiguous


def prepare_fold(parted: Partition, fold: Fold, config: Config, cache: FeatureCache | None,
                 progress: bool = True) -> FoldData:
    splits = split_partition(parted, fold)

    def samples(name: str, subsets) -> list[Sample]:
        split = splits[name]
        if len(split) == 0:
            return []
        return build_samples(split, config.data, config.features, cache, subsets=subsets, progress=progress)

    train = training_targets(samples("train", (CLEAR, AMBIGUOUS)), config.data.train_targets)
    if config.data.train_targets in AGGREGATORS:  # fitted on this fold's training utterances only
        annotations = annotator_labels(parted, config.data.train_targets)
        table = parted.table
        train_utterances = set(table.loc[table["speaker"].astype(str).isin(fold.train_speakers), "utt_id"])
        soft = aggregated_soft_labels(annotations, train_utterances, config.data.classes, config.data.train_targets)
        train = with_aggregated_labels(train, soft)
    return FoldData(
        train=train,
        validation=samples("validation", (CLEAR,)),
        test=samples("test", (CLEAR,)),
        test_ambiguous=samples("test_ambiguous", (AMBIGUOUS,)),
        classes=parted.classes,
    )


def annotator_labels(parted: Partition, method: str) -> pd.DataFrame:
    """The annotations beside the partition's manifest; a corpus without them is refused."""
    manifest = parted.source
    annotations = read_annotations(manifest, set(parted.table["utt_id"])) if Path(manifest).is_file() else None
    if annotations is None:
        raise ConfigError(f"data.train_targets={method} aggregates annotators, but {manifest or 'this corpus'} has no "
                          f"{ANNOTATIONS_CSV} beside it (who gave which label); `ser synth` and "
                          "`ser manifest iemocap` write one")
    return annotations
