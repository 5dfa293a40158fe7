"""Soft labels by label aggregation (crowd-kit's Dawid-Skene and MACE): what a confusion-aware
model infers that vote proportions cannot, fitted on a fold's training speakers only."""

import numpy as np
import pandas as pd
import pytest

from ser_lib.config import load_config
from ser_lib.data.annotations import read_annotations
from ser_lib.data.labels import AMBIGUOUS, CLEAR, load_partition
from ser_lib.errors import ConfigError
from ser_lib.method.aggregation import aggregated_soft_labels
from ser_lib.method.presets import apply_preset
from ser_lib.data.folds import make_folds
from ser_lib.train.fold_data import prepare_fold

CLASSES = ("anger", "happiness", "sadness", "neutral")


def confused_panel() -> pd.DataFrame:
    """40 utterances, 20 neutral and 20 sad. Annotators A and B are right; C hears neutral as
    sadness. On the test item A says neutral and C sadness: a tie for vote proportions."""
    rows = []
    for i in range(40):
        truth = "neutral" if i < 20 else "sadness"
        rows += [(f"u{i}", "A", truth), (f"u{i}", "B", truth), (f"u{i}", "C", "sadness")]
    rows += [("tie", "A", "neutral"), ("tie", "C", "sadness")]
    return pd.DataFrame(rows, columns=["utt_id", "annotator", "label"])


@pytest.mark.parametrize("method", ["dawid-skene", "mace"])
def test_a_learned_confusion_breaks_a_tie_that_votes_cannot(method):
    annotations = confused_panel()
    soft = aggregated_soft_labels(annotations, set(annotations["utt_id"]), CLASSES, method)
    tie = soft["tie"]
    assert tie.sum() == pytest.approx(1.0) and (tie >= 0).all()
    # C's "sadness" says little (C says it for everything); A's "neutral" decides.
    assert tie[CLASSES.index("neutral")] > 0.8, dict(zip(CLASSES, tie.round(3)))


def test_only_the_given_utterances_are_aggregated():
    annotations = confused_panel()
    train = {f"u{i}" for i in range(30)} | {"tie"}
    assert set(aggregated_soft_labels(annotations, train, CLASSES, "dawid-skene")) == train


def test_a_fold_trains_on_posteriors_fitted_without_its_test_and_validation_speakers(synth_small, tmp_path):
    base = load_config("demo", overrides={"cache_dir": str(tmp_path / "cache")})
    config = apply_preset(base, "ds-soft")
    parted = load_partition(synth_small, config.data)
    fold = make_folds(parted, config.eval)[0]
    data = prepare_fold(parted, fold, config, None, progress=False)
    votes = prepare_fold(parted, fold, apply_preset(base, "soft-static"), None, progress=False)
    changed = [a.sample_id for a, b in zip(data.train, votes.train) if not np.allclose(a.y_soft, b.y_soft)]
    subsets = {s.sample_id: s.subset for s in data.train}
    assert changed and {subsets[c] for c in changed} == {AMBIGUOUS}  # clear samples keep their one-hot label
    assert all(s.speaker in fold.train_speakers for s in data.train)
    # The posteriors the fold trains on come from its training speakers' labels alone.
    annotations = read_annotations(synth_small, set(parted.table["utt_id"]))
    train_ids = set(parted.table.loc[parted.table["speaker"].isin(fold.train_speakers), "utt_id"])
    refit = aggregated_soft_labels(annotations, train_ids, config.data.classes, "dawid-skene")
    for sample in data.train:
        if sample.subset == AMBIGUOUS:
            np.testing.assert_allclose(sample.y_soft.numpy(), refit[sample.utt_id], rtol=1e-5, atol=1e-6)
    assert {s.subset for s in data.validation + data.test} == {CLEAR}


def test_a_corpus_without_annotator_labels_is_refused(tiny_corpus):
    config = apply_preset(load_config("demo"), "ds-paper")
    parted = load_partition(tiny_corpus, config.data)
    with pytest.raises(ConfigError, match="has no annotations.csv beside it"):
        prepare_fold(parted, make_folds(parted, config.eval)[0], config, None, progress=False)
