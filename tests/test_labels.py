import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_lib.config import DataConfig
from ser_lib.errors import ManifestError
from ser_lib.data.labels import consensus_labels, format_table, multi_hot_labels, partition, soft_labels, summarize

CLASSES = ("anger", "happiness", "sadness", "neutral")


def manifest(rows, extra_columns=()):
    """rows: (speaker, votes for anger, happiness, sadness, neutral, [extra...], other)."""
    columns = ["speaker", *[f"votes_{c}" for c in CLASSES], *extra_columns, "votes_other"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(0, "utt_id", [f"u{i}" for i in range(len(frame))])
    frame.insert(1, "path", "x.wav")
    return frame


def test_the_default_rule_on_hand_made_cases():
    parted = partition(manifest([
        ("s1", 3, 0, 0, 0, 0),  # clear anger: 3 of 3
        ("s1", 2, 1, 0, 0, 1),  # 2 of 4 is not strictly more than half: ambiguous
        ("s1", 0, 0, 0, 0, 3),  # majority other: dropped
        ("s2", 1, 0, 0, 0, 3),  # majority other despite a target vote: dropped
        ("s2", 1, 1, 0, 0, 2),  # no majority, has target votes: ambiguous
        ("s2", 0, 0, 0, 0, 0.5),  # only other votes, no majority rule needed: dropped
        ("s2", 0, 2.5, 0, 0, 2),  # fractional votes: 2.5 of 4.5 is a majority
    ]))
    assert parted.table["subset"].tolist() == ["clear", "ambiguous", "dropped", "dropped", "ambiguous", "dropped",
                                               "clear"]
    assert parted.table["label"].tolist() == ["anger", "", "", "", "", "", "happiness"]
    soft = parted.soft_matrix()
    np.testing.assert_allclose(soft[1], [2 / 3, 1 / 3, 0, 0])  # eq. 5: target votes renormalised
    np.testing.assert_allclose(soft[4], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(soft[0], [1, 0, 0, 0])
    np.testing.assert_allclose(soft[2], 0)


def test_threshold_is_configurable_and_non_target_columns_count_as_other():
    frame = manifest([("s", 2, 1, 0, 0, 1, 0)], extra_columns=["votes_frustration"])
    assert partition(frame).table["subset"].tolist() == ["ambiguous"]
    assert partition(frame, DataConfig(clear_threshold=0.4)).table["subset"].tolist() == ["clear"]
    frustrated = manifest([("s", 1, 0, 0, 0, 3, 0)], extra_columns=["votes_frustration"])
    assert partition(frustrated).table["subset"].tolist() == ["dropped"]
    two_class = partition(frame, DataConfig(classes=("anger", "frustration")))
    np.testing.assert_allclose(two_class.soft_matrix()[0], [2 / 3, 1 / 3])


def test_a_partition_keeps_its_classes_root_and_source_through_row_selection(tmp_path):
    from ser_lib.data.manifest import read_manifest, write_manifest

    path = write_manifest(manifest([("s1", 3, 0, 0, 0, 0), ("s2", 1, 1, 0, 0, 0)]), tmp_path / "m.csv")
    parted = partition(read_manifest(path))
    assert (parted.classes, parted.root, parted.source) == (CLASSES, tmp_path.resolve(), str(path))
    ambiguous = parted.of_subset("ambiguous")
    assert (len(ambiguous), ambiguous.classes, ambiguous.root, ambiguous.source) == \
        (1, parted.classes, parted.root, parted.source)
    np.testing.assert_allclose(ambiguous.soft_matrix(), [[0.5, 0.5, 0, 0]])
    assert parted.table.attrs == {}  # one owner for each fact: the Partition's fields


def test_missing_class_column_is_a_clear_error():
    frame = manifest([("s", 1, 0, 0, 0, 0)]).drop(columns="votes_sadness")
    with pytest.raises(ManifestError, match=r"no votes column for target class\(es\) \['sadness'\]"):
        partition(frame)


def test_consensus_and_multi_hot():
    votes = np.array([[3.0, 1, 0, 0], [1, 1, 1, 0]])
    other = np.array([0.0, 0])
    assert consensus_labels(votes, other, 0.5).tolist() == [0, -1]
    assert consensus_labels(np.array([[1.0, 0, 0, 0]]), np.array([3.0]), 0.5).tolist() == [4]
    assert multi_hot_labels(votes).tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
    assert multi_hot_labels(votes, min_votes=2).tolist() == [[1, 0, 0, 0], [0, 0, 0, 0]]
    assert multi_hot_labels(np.array([[0.5, 0, 1 / 3, 0]])).tolist() == [[1, 0, 1, 0]]


def test_split_votes_written_to_csv_keep_exact_ties(tmp_path):
    from ser_lib.data.manifest import read_manifest, write_manifest

    # Five evaluators whose split votes give other exactly half of all votes: a tie, not a majority.
    other = 1 + 1 / 6 + 1 + 1 / 3  # 2.5000000000000004 in floating point
    frame = manifest([("s", 2.5, 0, 0, 0, other)])
    assert partition(frame).table["subset"].tolist() == ["ambiguous"]
    written = read_manifest(write_manifest(frame, tmp_path / "m.csv"))
    assert partition(written).table["subset"].tolist() == ["ambiguous"]


votes_strategy = st.lists(st.tuples(st.sampled_from(["s1", "s2", "s3"]),
                                    *[st.integers(0, 5)] * 5).filter(lambda r: sum(r[1:]) > 0),
                          min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(votes_strategy)
def test_partition_invariants(rows):
    parted = partition(manifest(rows))
    soft = parted.soft_matrix()
    subset = parted.table["subset"].to_numpy()
    kept = subset != "dropped"
    np.testing.assert_allclose(soft[kept].sum(axis=1), 1.0)
    assert (soft[~kept] == 0).all()
    votes = parted.table[[f"votes_{c}" for c in CLASSES] + ["votes_other"]].to_numpy(float)
    clear = subset == "clear"
    assert (votes[clear].max(axis=1) > votes[clear].sum(axis=1) / 2).all()
    assert (soft_labels(votes[:, :4])[kept & ~clear] == soft[kept & ~clear]).all()
    summary = summarize(parted)
    assert summary["clear"] + summary["ambiguous"] + summary["dropped"] == summary["total"] == len(rows)
    assert sum(summary["clear_per_class"].values()) == summary["clear"]
    assert sum(s["dropped"] for s in summary["by_speaker"].values()) == summary["dropped"]


def test_summary_and_table_report_dropped_per_session_and_speaker():
    frame = manifest([("s1", 3, 0, 0, 0, 0), ("s2", 0, 0, 0, 0, 3), ("s2", 1, 1, 0, 0, 0)])
    frame["session"] = ["A", "A", "A"]
    summary = summarize(partition(frame))
    assert summary["by_speaker"]["s2"] == {"clear": 0, "ambiguous": 1, "dropped": 1,
                                           "clear_per_class": dict.fromkeys(CLASSES, 0)}
    assert summary["by_session"]["A"]["dropped"] == 1
    table = format_table(summary).splitlines()
    assert table[0].split() == ["ang", "hap", "sad", "neu", "clear", "ambiguous", "dropped", "total"]
    assert table[-1].split() == ["all", "1", "0", "0", "0", "1", "1", "1", "3"]
    assert "| all | 1 | 0 | 0 | 0 | 1 | 1 | 1 | 3 |" in format_table(summary, markdown=True)
