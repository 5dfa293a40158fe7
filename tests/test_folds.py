"""Leave-one-speaker-out folds and their splits."""

import pandas as pd
import pytest

from conftest import EMODB_ROOT, needs_emodb
from ser_lib.config import EvalConfig
from ser_lib.errors import ConfigError, ManifestError
from ser_lib.data.folds import Fold, loso_folds, session_groups, split_partition
from ser_lib.data.labels import partition

CLASSES = ("anger", "happiness", "sadness", "neutral")
# votes (anger, happiness, sadness, neutral, other) of one speaker's utterances
CLEAR_VOTES = [(3, 0, 0, 0, 0), (0, 3, 0, 0, 0), (0, 0, 3, 0, 0), (0, 0, 0, 3, 0)]
AMBIGUOUS_VOTES = (1, 1, 0, 0, 1)
DROPPED_VOTES = (0, 0, 0, 0, 3)


def corpus(speakers, sessions=None, votes=None) -> pd.DataFrame:
    """Each speaker: one clear utterance per class, one ambiguous and one dropped."""
    votes = votes or [*CLEAR_VOTES, AMBIGUOUS_VOTES, DROPPED_VOTES]
    rows = []
    for i, speaker in enumerate(speakers):
        for j, v in enumerate(votes):
            row = {"utt_id": f"{speaker}_{j}", "path": "x.wav", "speaker": speaker}
            if sessions is not None:
                row["session"] = sessions[i]
            row |= {f"votes_{c}": n for c, n in zip(CLASSES, v)} | {"votes_other": v[-1]}
            rows.append(row)
    return partition(pd.DataFrame(rows))


IEMOCAP_LIKE = [f"Ses{s:02d}{g}" for s in range(1, 6) for g in "FM"]
IEMOCAP_SESSIONS = [s[:5] for s in IEMOCAP_LIKE]
EMODB_SPEAKERS = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]


def test_ten_speakers_in_five_sessions_validate_on_their_session_partner():
    folds = loso_folds(corpus(IEMOCAP_LIKE, IEMOCAP_SESSIONS))
    assert [f.test_speaker for f in folds] == sorted(IEMOCAP_LIKE)
    by_speaker = {f.test_speaker: f for f in folds}
    assert by_speaker["Ses01F"].validation_speakers == ("Ses01M",)
    assert by_speaker["Ses04M"].validation_speakers == ("Ses04F",)
    for fold in folds:
        assert not fold.optimistic
        assert len(fold.train_speakers) == 8
        session = fold.test_speaker[:5]
        assert all(not s.startswith(session) for s in fold.train_speakers)
        assert set(fold.train_speakers) | set(fold.validation_speakers) | {fold.test_speaker} == set(IEMOCAP_LIKE)


def test_without_a_session_column_speakers_pair_in_sorted_order():
    folds = {f.test_speaker: f for f in loso_folds(corpus(EMODB_SPEAKERS[::-1]))}
    assert folds["03"].validation_speakers == ("08",)
    assert folds["08"].validation_speakers == ("03",)
    assert folds["10"].validation_speakers == ("09",)
    assert folds["16"].validation_speakers == ("15",)
    assert folds["09"].train_speakers == ("03", "08", "11", "12", "13", "14", "15", "16")
    # An odd count: the last three speakers form one group.
    groups = session_groups(corpus(["a", "b", "c", "d", "e"]))
    assert list(groups.values()) == [("a", "b"), ("c", "d", "e")]
    odd = {f.test_speaker: f for f in loso_folds(corpus(["a", "b", "c", "d", "e"]))}
    assert odd["e"].validation_speakers == ("c", "d")
    assert odd["e"].train_speakers == ("a", "b")


def test_paper_validation_uses_the_test_speaker_and_is_marked_optimistic():
    folds = loso_folds(corpus(IEMOCAP_LIKE, IEMOCAP_SESSIONS), EvalConfig(validation="paper"))
    assert len(folds) == 10
    for fold in folds:
        assert fold.optimistic
        assert fold.validation_speakers == (fold.test_speaker,)
        assert len(fold.train_speakers) == 9
    assert "optimistic" in folds[0].describe()


def test_chosen_folds_and_unknown_speakers():
    parted = corpus(IEMOCAP_LIKE, IEMOCAP_SESSIONS)
    folds = loso_folds(parted, EvalConfig(folds=("Ses03M", "Ses01F")))
    assert [f.test_speaker for f in folds] == ["Ses03M", "Ses01F"]
    with pytest.raises(ConfigError, match=r"unknown speaker\(s\) \['Ses09F'\].*Ses01F.*Ses05M"):
        loso_folds(parted, EvalConfig(folds=("Ses01F", "Ses09F")))
    with pytest.raises(ConfigError, match="more than once"):
        loso_folds(parted, EvalConfig(folds=("Ses01F", "Ses01F")))
    # Integer speakers from a YAML list are matched as strings.
    assert loso_folds(corpus(EMODB_SPEAKERS), EvalConfig(folds=(10,)))[0].validation_speakers == ("09",)


def test_session_validation_needs_a_partner_and_training_speakers():
    lonely = corpus(["a", "b", "c"], sessions=["s1", "s2", "s2"])
    with pytest.raises(ConfigError, match="fold a: speaker a is alone in session s1.*eval.validation=paper"):
        loso_folds(lonely)
    with pytest.raises(ConfigError, match="no training speakers"):
        loso_folds(corpus(["a", "b"]))
    with pytest.raises(ManifestError, match=r"session column is empty.*\['b'\]"):
        loso_folds(corpus(["a", "b", "c", "d"], sessions=["s1", "", "s2", "s2"]))


def test_split_contents():
    parted = corpus(IEMOCAP_LIKE, IEMOCAP_SESSIONS)
    fold = {f.test_speaker: f for f in loso_folds(parted)}["Ses02M"]
    splits = split_partition(parted, fold)
    assert all(split.classes == CLASSES and split.source == parted.source for split in splits.values())
    train, validation, test = splits["train"].table, splits["validation"].table, splits["test"].table
    assert set(train["speaker"]) == set(fold.train_speakers)
    assert sorted(train["subset"].unique()) == ["ambiguous", "clear"]
    assert len(train) == 8 * 5
    assert set(validation["speaker"]) == {"Ses02F"} and (validation["subset"] == "clear").all()
    assert set(test["speaker"]) == {"Ses02M"} and (test["subset"] == "clear").all() and len(test) == 4
    assert (splits["test_ambiguous"].table["subset"] == "ambiguous").all() and len(splits["test_ambiguous"]) == 1
    used = pd.concat(split.table for split in splits.values())
    assert not (used["subset"] == "dropped").any()
    assert used["utt_id"].is_unique
    # Paper mode: validation and test are the same clear samples of the test speaker.
    paper = split_partition(parted, Fold("Ses02M", ("Ses02M",), tuple(s for s in IEMOCAP_LIKE if s != "Ses02M"), True))
    assert paper["validation"].table["utt_id"].tolist() == paper["test"].table["utt_id"].tolist()


def test_split_errors_name_the_fold_and_the_counts():
    parted = corpus(IEMOCAP_LIKE, IEMOCAP_SESSIONS)
    table = parted.table
    only_ambiguous = parted.rows(~((table["speaker"] == "Ses01F") & (table["subset"] == "clear")))
    fold = loso_folds(only_ambiguous)[0]
    with pytest.raises(ManifestError, match=r"fold Ses01F: the test split .* is empty.*'ambiguous': 1"):
        split_partition(only_ambiguous, fold)
    # No clear sadness among the training speakers of fold Ses01F.
    no_sadness = parted.rows(~((table["label"] == "sadness") & ~table["speaker"].str.startswith("Ses01")))
    fold = loso_folds(no_sadness)[0]
    with pytest.raises(ManifestError, match=r"fold Ses01F: no clear training sample of class\(es\) \['sadness'\]"):
        split_partition(no_sadness, fold)
    with pytest.raises(ConfigError, match=r"\['Ses09F'\] are not in this corpus"):
        split_partition(parted, Fold("Ses01F", ("Ses01M",), ("Ses09F",)))
    with pytest.raises(ConfigError, match="needs a Partition .*not DataFrame"):
        split_partition(table, fold)  # a bare table has lost the classes, root and source


@needs_emodb
def test_emodb_folds_pair_speakers_and_use_every_clear_sample(tmp_path):
    from ser_lib.data.corpora.emodb import build_emodb_manifest
    from ser_lib.data.manifest import read_manifest

    build_emodb_manifest(EMODB_ROOT, tmp_path / "manifest.csv")
    parted = partition(read_manifest(tmp_path / "manifest.csv"))
    folds = loso_folds(parted)
    assert [(f.test_speaker, f.validation_speakers) for f in folds[:3]] == [("03", ("08",)), ("08", ("03",)),
                                                                            ("09", ("10",))]
    num_clear = int((parted.table["subset"] == "clear").sum())
    for fold in folds:
        splits = split_partition(parted, fold)
        assert len(splits["train"]) + len(splits["validation"]) + len(splits["test"]) == num_clear
