import numpy as np
import pytest
import soundfile

from ser_lib.data.corpora.iemocap import EXPECTED_CONSENSUS, build_iemocap_manifest, parse_evaluation_file
from ser_lib.errors import ConfigError, CorpusError
from ser_lib.data.annotations import read_annotations
from ser_lib.data.manifest import read_manifest

VOTES = ["votes_anger", "votes_happiness", "votes_sadness", "votes_neutral", "votes_other"]
COMMENT = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
VAD = "[2.5000, 2.5000, 2.5000]"

# The exact layout of an EmoEvaluation file: tab separated, blank line between turns.
DIALOG = "\n".join([
    COMMENT,
    "",
    f"[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t{VAD}",
    "C-E2:\tNeutral;\t()",
    "C-E3:\tNeutral;\t()",
    "C-E4:\tNeutral;\t()",
    "C-F1:\tNeutral;\t(curious)",
    "A-E3:\tval 3; act 2; dom  2;\t()",
    "A-E4:\tval 2; act 3; dom  2;\t(mildly aggravated but staying polite, attitude)",
    "A-F1:\tval 3; act 2; dom  2;\t()",
    "",
    f"[10.0100 - 11.3925]\tSes01F_impro01_M001\tfru\t{VAD}",
    "C-E2:\tNeutral;\t()",
    "C-E3:\tFrustration; Anger;\t()",
    "C-E4:\tAnger;\t()",
    "C-M1:\tSadness;\t()",
    "A-E3:\tval 2; act 3; dom  3;\t()",
    "",
    f"[12.5000 - 15.0000]\tSes01F_impro01_F002\texc\t{VAD}",
    "C-E1:\tExcited;\t()",
    "C-E2:\tHappiness; Excited;\t()",
    "C-E3:\tSurprise; Excited; Other;\t(amused)",
    "C-F1:\tHappiness;\t()",
    "",
]) + "\n"


def write_evaluation(root, dialog, text):
    session = int(dialog[3:5])
    path = root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("latin-1"))
    wav = root / f"Session{session}" / "dialog" / "wav" / f"{dialog}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(wav, np.zeros((1600, 2), dtype=np.float32), 16000)  # stereo, like IEMOCAP's
    return path


def votes_of(frame, turn):
    return frame.set_index("utt_id").loc[turn, VOTES].tolist()


def test_votes_speakers_and_times_from_an_evaluation_file(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    write_evaluation(root, "Ses01F_impro01", DIALOG)
    out = tmp_path / "data" / "iemocap" / "manifest.csv"
    summary = build_iemocap_manifest(root, out)
    frame = read_manifest(out, check_audio=True)

    assert frame["utt_id"].tolist() == ["Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_impro01_F002"]
    # The dialog prefix says F (who wore the markers); the speaker is the last part's gender.
    assert frame["speaker"].tolist() == ["Ses01F", "Ses01M", "Ses01F"]
    assert set(frame["session"]) == {"Ses01"}
    assert frame["start"].tolist() == [6.2901, 10.01, 12.5]
    assert frame["end"].tolist() == [8.2357, 11.3925, 15.0]
    assert frame["duration"].tolist() == pytest.approx([1.9456, 1.3825, 2.5])
    assert set(frame["path"]) == {"../../IEMOCAP_full_release/Session1/dialog/wav/Ses01F_impro01.wav"}

    assert votes_of(frame, "Ses01F_impro01_F000") == [0, 0, 0, 3, 0]  # C-F1 is a self-assessment
    # Frustration; Anger: the evaluator's one vote is split, frustration going to other.
    assert votes_of(frame, "Ses01F_impro01_M001") == [1.5, 0, 0, 1, 0.5]
    # Excited merges into happiness; "Happiness; Excited" is still one vote.
    assert votes_of(frame, "Ses01F_impro01_F002") == pytest.approx([0, 2 + 1 / 3, 0, 0, 2 / 3], abs=1e-5)

    # Who gave which tag, beside the manifest: the counted evaluators only (not C-F1 / C-M1), each
    # emotion once per evaluator ("Happiness; Excited" is happiness), outside ones by name.
    annotations = read_annotations(out, set(frame["utt_id"]))
    given = annotations[annotations["utt_id"] == "Ses01F_impro01_F002"]
    assert given[["annotator", "label"]].values.tolist() == [
        ["Ses01-E1", "happiness"], ["Ses01-E2", "happiness"], ["Ses01-E3", "surprise"], ["Ses01-E3", "happiness"],
        ["Ses01-E3", "other"]]
    assert set(annotations.loc[annotations["utt_id"] == "Ses01F_impro01_F000", "annotator"]) == {
        "Ses01-E2", "Ses01-E3", "Ses01-E4"}

    assert summary.utterances == 3 and summary.sessions_found == ["Session1"]
    assert summary.consensus_per_speaker == {"Ses01F": 2} and summary.consensus_total == 2
    assert summary.header_labels == {"exc": 1, "fru": 1, "neu": 1}
    assert summary.consensus_check.startswith("skipped: only session(s) 1 present")
    assert summary.multi_tag_evaluations == 3


def test_self_assessments_and_each_tag_a_vote(tmp_path):
    write_evaluation(tmp_path, "Ses01F_impro01", DIALOG)
    build_iemocap_manifest(tmp_path, tmp_path / "self.csv", self_assessments=True)
    frame = read_manifest(tmp_path / "self.csv")
    assert votes_of(frame, "Ses01F_impro01_F000") == [0, 0, 0, 4, 0]
    assert votes_of(frame, "Ses01F_impro01_M001") == [1.5, 0, 1, 1, 0.5]
    assert votes_of(frame, "Ses01F_impro01_F002") == pytest.approx([0, 3 + 1 / 3, 0, 0, 2 / 3], abs=1e-5)

    build_iemocap_manifest(tmp_path, tmp_path / "each.csv", multi_tag="each")
    frame = read_manifest(tmp_path / "each.csv")
    assert votes_of(frame, "Ses01F_impro01_M001") == [2, 0, 0, 1, 1]
    assert votes_of(frame, "Ses01F_impro01_F002") == [0, 4, 0, 0, 2]

    with pytest.raises(ConfigError, match="multi_tag"):
        build_iemocap_manifest(tmp_path, tmp_path / "x.csv", multi_tag="first")


def test_per_turn_audio_files(tmp_path):
    write_evaluation(tmp_path, "Ses01F_impro01", DIALOG)
    for turn, seconds in (("F000", 1.0), ("M001", 0.5), ("F002", 0.25)):
        wav = tmp_path / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / f"Ses01F_impro01_{turn}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)
    build_iemocap_manifest(tmp_path, tmp_path / "m.csv", audio="sentences")
    frame = read_manifest(tmp_path / "m.csv", check_audio=True)
    assert "start" not in frame.columns and "end" not in frame.columns
    assert frame["duration"].tolist() == [1.0, 0.5, 0.25]
    assert frame["path"][1] == "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav"

    (tmp_path / "Session1" / "dialog" / "wav" / "Ses01F_impro01.wav").unlink()
    with pytest.raises(CorpusError, match=r"1 dialog audio file\(s\) do not exist\n.*Ses01F_impro01.wav"):
        build_iemocap_manifest(tmp_path, tmp_path / "m.csv")


def full_corpus(root):
    """Five one-dialog sessions: per speaker, F has 1 consensus turn, M has 1 (fru excluded)."""
    for session in range(1, 6):
        dialog = f"Ses0{session}M_script01_1"
        write_evaluation(root, dialog, "\n".join([
            COMMENT, "",
            f"[1.0 - 2.0]\t{dialog}_F000\tang\t{VAD}", "C-E1:\tAnger;\t()", "",
            f"[2.0 - 3.0]\t{dialog}_M001\thap\t{VAD}", "C-E1:\tHappiness;\t()", "",
            f"[3.0 - 4.0]\t{dialog}_M002\tfru\t{VAD}", "C-E1:\tFrustration;\t()", "",
        ]) + "\n")
    return {f"Ses0{s}{g}": 1 for s in range(1, 6) for g in "FM"}


def test_consensus_counts_are_checked_on_a_full_corpus(tmp_path):
    counts = full_corpus(tmp_path)
    summary = build_iemocap_manifest(tmp_path, tmp_path / "ok.csv", expected_consensus=counts)
    assert summary.consensus_check.startswith("passed: 10 turns")
    assert summary.sessions_found == [f"Session{n}" for n in range(1, 6)]

    wrong = {**counts, "Ses03M": 2, "Ses05F": 0}
    with pytest.raises(CorpusError) as error:
        build_iemocap_manifest(tmp_path, tmp_path / "bad.csv", expected_consensus=wrong)
    message = str(error.value)
    assert "Ses03M: expected 2, found 1" in message and "Ses05F: expected 0, found 1" in message
    assert "Ses01F" not in message.split("\n", 1)[1]
    assert not (tmp_path / "bad.csv").exists()

    # The published counts (5531 turns) are the default check.
    with pytest.raises(CorpusError, match="Ses01F: expected 528, found 1"):
        build_iemocap_manifest(tmp_path, tmp_path / "bad.csv")
    assert sum(EXPECTED_CONSENSUS.values()) == 5531


def test_hidden_and_other_files_are_ignored_and_reported(tmp_path):
    path = write_evaluation(tmp_path, "Ses01F_impro01", DIALOG)
    (path.parent / "._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    (path.parent / "Categorical").mkdir()
    (path.parent / "Categorical" / "Ses01F_impro01_e1_cat.txt").write_text("Ses01F_impro01_F000 :Neutral state; ()\n")
    summary = build_iemocap_manifest(tmp_path, tmp_path / "m.csv")
    assert summary.utterances == 3
    assert summary.ignored_files == [str(path.parent / "._Ses01F_impro01.txt")]


TURN = f"[1.0000 - 2.0000]\tSes01F_impro01_F000\tneu\t{VAD}"


@pytest.mark.parametrize("lines, line_number, expected", [
    (["[1.0 - 2.0] Ses01F_impro01_F000 neu", "C-E1:\tNeutral;\t()"], 3,
     "not a turn header '[START - END] TURN EMOTION [V, A, D]': '[1.0 - 2.0] Ses01F_impro01_F000 neu'"),
    ([TURN, "C-E1:\t;\t()"], 4, "evaluator C-E1 gives no categorical tag: 'C-E1:\\t;\\t()'"),
    ([TURN, "C-E1:\tBored; Neutral;\t()"], 4, "unknown tag(s) ['Bored']"),
    (["C-E1:\tNeutral;\t()", TURN, "C-E1:\tNeutral;\t()"], 3, "evaluator line before any turn header"),
    ([TURN, "A-E1:\tval 3; act 2; dom  2;\t()"], 3, "turn Ses01F_impro01_F000 has no categorical (C-...) line"),
    ([TURN.replace("neu", "bor"), "C-E1:\tNeutral;\t()"], 3, "unknown emotion 'bor'"),
    ([TURN.replace("2.0000", "0.5000"), "C-E1:\tNeutral;\t()"], 3, "end 0.5 is not after start 1"),
    ([TURN.replace("impro01", "impro02"), "C-E1:\tNeutral;\t()"], 3,
     "turn Ses01F_impro02_F000 belongs to dialog Ses01F_impro02, not to this file's Ses01F_impro01"),
    ([TURN.replace("_F000", "_X000"), "C-E1:\tNeutral;\t()"], 3, "is not of the form Ses01F_<dialog>_M012"),
    ([TURN, "C-E1:\tNeutral;\t()", "C-E1:\tAnger;\t()"], 5, "evaluator C-E1 appears twice"),
    ([TURN, "C-X1:\tNeutral;\t()"], 4, "unknown evaluator C-X1 (expected C-E<n>"),
    ([TURN, "C-F1:\tNeutral;\t()"], 3, "has only self-assessments (C-F/C-M), no external evaluator"),
])
def test_malformed_lines_are_named(tmp_path, lines, line_number, expected):
    path = write_evaluation(tmp_path, "Ses01F_impro01", "\n".join([COMMENT, "", *lines, ""]) + "\n")
    with pytest.raises(CorpusError, match="1 problem") as error:
        build_iemocap_manifest(tmp_path, tmp_path / "m.csv")
    assert f"{path}: line {line_number}: " in str(error.value)
    assert expected in str(error.value)
    assert not (tmp_path / "m.csv").exists()


def test_self_assessed_turns_are_fine_with_self_assessments(tmp_path):
    write_evaluation(tmp_path, "Ses01F_impro01", "\n".join([TURN, "C-F1:\tAnger;\t()"]) + "\n")
    build_iemocap_manifest(tmp_path, tmp_path / "m.csv", self_assessments=True)
    assert votes_of(read_manifest(tmp_path / "m.csv"), "Ses01F_impro01_F000") == [1, 0, 0, 0, 0]


def test_every_problem_in_every_file_is_reported_at_once(tmp_path):
    write_evaluation(tmp_path, "Ses01F_impro01", "\n".join([TURN, "C-E1:\tBored;\t()", "whatever"]) + "\n")
    write_evaluation(tmp_path, "Ses02M_impro03", TURN.replace("Ses01F_impro01", "Ses02M_impro03") + "\n")
    with pytest.raises(CorpusError, match="3 problem") as error:
        build_iemocap_manifest(tmp_path, tmp_path / "m.csv")
    assert "Ses01F_impro01.txt: line 2: unknown tag" in str(error.value)
    assert "Ses01F_impro01.txt: line 3: not a turn header" in str(error.value)
    assert "Ses02M_impro03.txt: line 1: turn Ses02M_impro03_F000 has no categorical" in str(error.value)


def test_unreadable_and_missing_inputs(tmp_path):
    with pytest.raises(CorpusError, match="the IEMOCAP folder does not exist"):
        build_iemocap_manifest(tmp_path / "nowhere", tmp_path / "m.csv")
    with pytest.raises(CorpusError, match=r"no SessionN/dialog/EmoEvaluation/Ses\*.txt files"):
        build_iemocap_manifest(tmp_path, tmp_path / "m.csv")
    path = write_evaluation(tmp_path, "Ses01F_impro01", "")
    path.write_bytes(DIALOG.encode("utf-16"))
    with pytest.raises(CorpusError, match="Ses01F_impro01.txt: byte 3 is NUL"):
        parse_evaluation_file(path)
    # Latin-1 comments (bytes that are not UTF-8) are read, not refused.
    path.write_bytes(DIALOG.replace("(curious)", "(naïve)").encode("latin-1"))
    assert len(parse_evaluation_file(path)) == 3
