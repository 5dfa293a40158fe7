"""`synth.annotator_confusions`: each synthetic annotator's true confusion matrix, what Dawid-Skene
estimates (notebook 08 sets the two side by side)."""

import numpy as np
import pandas as pd
import pytest

from ser_lib.config import DataConfig, SynthConfig
from ser_lib.data.corpora import synth
from ser_lib.data.corpora.synth import annotators
from ser_lib.errors import ConfigError

CLASSES = list(DataConfig().classes)


def counted(utterances: list[synth.Utterance]) -> dict[str, pd.DataFrame]:
    """The confusion matrices counted from the planned votes: label given (target classes only)
    against the utterance's true argmax."""
    labels = synth.annotations_frame(utterances)
    truth = {u.utt_id: CLASSES[int(np.argmax(u.true))] for u in utterances}
    labels = labels[labels["label"].isin(CLASSES)].assign(true=labels["utt_id"].map(truth))
    return {annotator: pd.crosstab(rows["true"], rows["label"], normalize="index")
            .reindex(index=CLASSES, columns=CLASSES, fill_value=0.0)
            for annotator, rows in labels.groupby("annotator")}


def test_one_row_stochastic_matrix_per_annotator_of_the_annotations():
    matrices = synth.annotator_confusions(0, "small", annotator_confusion=0.4)
    annotators = set(synth.annotations_frame(synth.plan_corpus(0, "small", annotator_confusion=0.4))["annotator"])
    assert set(matrices) == annotators and len(matrices) == synth.SESSIONS * synth.ANNOTATORS_PER_SESSION
    for matrix in matrices.values():
        assert list(matrix.index) == list(matrix.columns) == CLASSES
        assert (matrix.to_numpy() >= 0).all()
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0)


def test_faithful_annotators_are_diagonal_dominant():
    """Temperature 1 and no confusion: each annotator perceives the truth (times its small bias), so
    every class is most often given its own label. Not the identity: half the utterances are blends,
    whose argmax holds well under half their mass."""
    for matrix in synth.annotator_confusions(0, "small", annotator_temperature=1.0).values():
        values = matrix.to_numpy()
        off_diagonal = np.where(np.eye(len(CLASSES), dtype=bool), 0.0, values)
        assert (np.diag(values) > off_diagonal.max(axis=1)).all(), matrix
        assert np.diag(values).mean() > 0.55


def test_the_confused_pair_shows_up():
    """With a confusion share, each annotator gives its own `heard_as` label more often, above all
    when the truth is mostly `heard`; the moved share comes out of `heard` alone, so the other
    labels' entries do not move."""
    share = 0.6
    plain = synth.annotator_confusions(0, "small")
    confused = synth.annotator_confusions(0, "small", annotator_confusion=share)
    for session_ix in range(synth.SESSIONS):
        pool = annotators.session_pool(0, session_ix, len(CLASSES), max_temperature=SynthConfig.annotator_temperature,
                                       confusion=share)
        for a, annotator in enumerate(pool):
            name = f"Ses{session_ix + 1:02d}-A{a + 1}"
            heard, heard_as = annotator.confusion
            assert confused[name].attrs["confused"] == (CLASSES[heard], CLASSES[heard_as])
            assert plain[name].attrs["confused"] is None
            shift = confused[name].to_numpy() - plain[name].to_numpy()
            assert shift[heard, heard_as] > 0.25 and shift[heard, heard] < -0.25, (name, shift)
            assert (shift[:, heard_as] >= 0).all() and (shift[:, heard] <= 0).all()
            untouched = [k for k in range(len(CLASSES)) if k not in (heard, heard_as)]
            np.testing.assert_allclose(shift[:, untouched], 0.0, atol=1e-12)


@pytest.mark.parametrize("confusion", [0.0, 0.4])
def test_the_planned_votes_scatter_around_the_matrix(confusion):
    """Counted from the votes of a large corpus (~400 labels per annotator), the matrices agree with
    the analytical ones up to sampling noise, and averaged over the 30 annotators without a bias:
    the perception rule is the one the votes are drawn with."""
    utterances = synth.plan_corpus(0, per_speaker=300, annotator_confusion=confusion)
    expected = synth.annotator_confusions(0, per_speaker=300, annotator_confusion=confusion)
    found = counted(utterances)
    differences = np.array([found[name].to_numpy() - expected[name].to_numpy() for name in expected])
    assert np.abs(differences).mean() < 0.045  # measured: 0.030
    assert np.abs(differences.mean(axis=0)).max() < 0.03  # measured: 0.009 and 0.012


def test_planning_is_unchanged_and_arguments_are_checked():
    """The matrices come from the plan; asking for them changes no utterance's votes."""
    before = [u.votes.tolist() for u in synth.plan_corpus(3, "small", annotator_confusion=0.4)]
    synth.annotator_confusions(3, "small", annotator_confusion=0.4)
    assert [u.votes.tolist() for u in synth.plan_corpus(3, "small", annotator_confusion=0.4)] == before
    with pytest.raises(ConfigError, match="annotator_temperature"):
        synth.annotator_confusions(0, "small", annotator_temperature=0.5)
