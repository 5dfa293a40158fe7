"""Annotator-level labels (`annotations.csv` beside a manifest): the synthetic corpus writes who
gave each vote, and a bad file is refused with every bad row and its line."""

import pandas as pd
import pytest

from ser_lib.cli import main as ser
from ser_lib.config import DataConfig
from ser_lib.data.annotations import ANNOTATIONS_CSV, read_annotations, validate_annotations, vote_counts
from ser_lib.data.manifest import read_manifest, vote_columns
from ser_lib.errors import ManifestError


def test_the_synthetic_corpus_says_who_gave_each_vote(synth_small):
    manifest = read_manifest(synth_small)
    annotations = read_annotations(synth_small, set(manifest["utt_id"]))
    # Each label is one vote: counted per utterance, they are the manifest's vote columns.
    counts = vote_counts(annotations, DataConfig().classes)
    votes = manifest.set_index("utt_id")[vote_columns(manifest.columns)].astype(int)
    pd.testing.assert_frame_equal(counts.loc[votes.index, votes.columns], votes, check_names=False)
    # A fixed pool per session, each annotator labelling many of its utterances, once each.
    annotators = annotations.groupby(annotations["annotator"].str[:5])["annotator"].nunique()
    assert annotators.to_dict() == {f"Ses{s:02d}": 6 for s in range(1, 6)}
    assert annotations["annotator"].value_counts().min() >= 10
    assert not annotations.duplicated(["utt_id", "annotator"]).any()
    assert (annotations["utt_id"].str[:5] == annotations["annotator"].str[:5]).all()  # its own session's pool


def write_files(tmp_path, rows: list[str]):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("utt_id,path,speaker,votes_anger,votes_other\n"
                        "u1,a.wav,S1,2,1\n"
                        "u2,b.wav,S2,1,0\n")
    (tmp_path / ANNOTATIONS_CSV).write_text("\n".join(["utt_id,annotator,label", *rows]) + "\n")
    return manifest


def test_every_bad_row_is_named_with_its_line(tmp_path):
    manifest = write_files(tmp_path, ["u1,A,anger", "u9,A,anger", "u2,,anger", "u2,B,sadness"])
    problems = validate_annotations(tmp_path / ANNOTATIONS_CSV, {"u1", "u2"})
    assert [str(p) for p in problems] == ["line 3: utt_id 'u9' is not in the manifest", "line 4: empty annotator"]
    with pytest.raises(ManifestError, match=r"annotations.csv: 2 problem\(s\)"):
        read_annotations(manifest, {"u1", "u2"})


def test_wrong_columns_and_a_missing_file(tmp_path):
    manifest = write_files(tmp_path, [])
    (tmp_path / ANNOTATIONS_CSV).write_text("utt_id,rater,label\nu1,A,anger\n")
    assert [str(p) for p in validate_annotations(tmp_path / ANNOTATIONS_CSV, {"u1"})] == [
        "line 1: columns must be ['utt_id', 'annotator', 'label'], got ['utt_id', 'rater', 'label']"]
    (tmp_path / ANNOTATIONS_CSV).unlink()
    assert read_annotations(manifest, {"u1", "u2"}) is None  # a corpus without annotator labels


def test_ser_manifest_validate_checks_the_annotations_too(tmp_path, capsys):
    manifest = write_files(tmp_path, ["u1,A,anger", "u3,A,anger"])
    assert ser(["manifest", "validate", str(manifest), "--no-audio"]) == 1
    assert "line 3: utt_id 'u3' is not in the manifest" in capsys.readouterr().err
    write_files(tmp_path, ["u1,A,anger", "u2,A,other"])
    assert ser(["manifest", "validate", str(manifest), "--no-audio"]) == 0
    assert f"{ANNOTATIONS_CSV}: valid" in capsys.readouterr().out
