import os
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile

from conftest import EMODB_ROOT, needs_emodb
from ser_lib.data.corpora.emodb import build_emodb_manifest, intended_votes, read_listening_test
from ser_lib.errors import AudioError, CorpusError
from ser_lib.data.manifest import read_manifest, validate_manifest

NBSP = "\xa0"
HEADER = "Nr.\tSatz\terkannt\tnatuerlich"
VOTES = ["votes_anger", "votes_happiness", "votes_sadness", "votes_neutral", "votes_other"]


def subset(row) -> str:
    """The partition rule, written out independently of ser_lib.labels."""
    votes = [row[c] for c in VOTES]
    total, top = sum(votes), max(votes)
    if top > total / 2:
        return "dropped" if votes.index(top) == len(votes) - 1 else "clear"
    return "ambiguous" if sum(votes[:-1]) > 0 else "dropped"


def table_line(number, name, recognised, natural="50,00"):
    # The layout of the real file: NBSP padding after the number and the percentages.
    return f"{number}{NBSP * 2}\t{name}\t{recognised}{NBSP * 5}\t{natural}{NBSP * 5}"


def make_corpus(root, lines, wavs, encoding="latin-1"):
    (root / "wav").mkdir(parents=True, exist_ok=True)
    (root / "erkennung.txt").write_bytes(("\n".join([HEADER, *lines]) + "\n").encode(encoding))
    for name in wavs:
        soundfile.write(root / "wav" / name, np.full(2205, 0.1, dtype=np.float32), 22050, subtype="PCM_16")
    return root


FIXTURE_LINES = [
    table_line(1, "03a01Fa.wav", "52,50"),   # 10.5 of 20 -> 11 (half up)
    table_line(2, "03a01Wa.wav", "85,71"),   # 18 of 21 listeners -> 17.14 -> 17
    table_line(3, "08b02Ab.wav", "95,00"),   # fear: outside the target classes
    table_line(4, "08b02Nc.wav", "100,00"),
    table_line(5, "09a05Tb.wav", "45,00"),   # no wav shipped for this row
]
FIXTURE_WAVS = ["03a01Fa.wav", "03a01Wa.wav", "08b02Ab.wav", "08b02Nc.wav"]


def test_votes_from_recognition_rates_and_summary(tmp_path):
    root = make_corpus(tmp_path / "emodb", FIXTURE_LINES, FIXTURE_WAVS)
    assert b"\xa0" in (root / "erkennung.txt").read_bytes()  # really Latin-1 NBSP padding
    out = tmp_path / "data" / "emodb" / "manifest.csv"
    summary = build_emodb_manifest(root, out)

    frame = read_manifest(out, check_audio=True).set_index("utt_id")
    assert list(frame.index) == ["03a01Fa", "03a01Wa", "08b02Ab", "08b02Nc"]
    assert frame.loc["03a01Fa", VOTES].tolist() == [0, 11, 0, 0, 9]
    assert frame.loc["03a01Wa", VOTES].tolist() == [17, 0, 0, 0, 3]
    assert frame.loc["08b02Ab", VOTES].tolist() == [0, 0, 0, 0, 20]
    assert frame.loc["08b02Nc", VOTES].tolist() == [0, 0, 0, 20, 0]
    assert frame["speaker"].tolist() == ["03", "03", "08", "08"]
    assert "session" not in frame.columns
    assert frame["duration"].tolist() == pytest.approx([0.1] * 4)
    assert frame.loc["03a01Fa", "path"] == "../../emodb/wav/03a01Fa.wav"

    assert summary.utterances == 4
    assert summary.table_rows == 5 and summary.table_rows_without_wav == 1
    assert summary.outside_classes == {"fear": 1}
    assert summary.per_speaker == {"03": 2, "08": 2}
    assert summary.table_encoding == "latin-1"


def test_rounding_is_half_up_on_twenty_listeners():
    assert [intended_votes(p) for p in (0, 2.5, 52.5, 57.5, 61.9, 95.24, 100)] == [0, 1, 11, 12, 12, 19, 20]


def test_a_utf8_copy_of_the_table_is_read_the_same(tmp_path):
    latin = read_listening_test(make_corpus(tmp_path / "a", FIXTURE_LINES, []) / "erkennung.txt")
    utf8 = read_listening_test(make_corpus(tmp_path / "b", FIXTURE_LINES, [], "utf-8") / "erkennung.txt")
    assert (latin.encoding, utf8.encoding) == ("latin-1", "utf-8")
    assert latin.recognised == utf8.recognised == {
        "03a01Fa.wav": 52.5, "03a01Wa.wav": 85.71, "08b02Ab.wav": 95.0, "08b02Nc.wav": 100.0, "09a05Tb.wav": 45.0}


@pytest.mark.parametrize("bad_line, expected", [
    ("7\t03a02Fa.wav\t90,00", "line 3: expected 4 tab-separated fields, got 3"),
    (table_line(7, "03a02Fa.wav", "neunzig"), "line 3: erkannt 'neunzig' is not a percentage"),
    (table_line(7, "03a02Fa.wav", "120,00"), "line 3: erkannt '120,00' is not a percentage"),
    (table_line(7, "03a02Fa.wav", "90,00", "-5"), "line 3: natuerlich '-5' is not a percentage"),
    (table_line(7, "3a02Fa.wav", "90,00"), "line 3: Satz '3a02Fa.wav': does not match the EmoDB pattern"),
    (table_line(7, "03a02Xa.wav", "90,00"), "line 3: Satz '03a02Xa.wav': unknown emotion letter 'X'"),
    (table_line(7, "03a01Fa.wav", "90,00"), "line 3: Satz '03a01Fa.wav' is listed twice (first on line 2)"),
    (table_line("x", "03a02Fa.wav", "90,00"), "line 3: Nr. 'x' is not a row number"),
])
def test_malformed_table_lines_are_named(tmp_path, bad_line, expected):
    root = make_corpus(tmp_path, [table_line(1, "03a01Fa.wav", "90,00"), bad_line], ["03a01Fa.wav"])
    with pytest.raises(CorpusError) as error:
        build_emodb_manifest(root, tmp_path / "manifest.csv")
    assert str(root / "erkennung.txt") in str(error.value)
    assert expected in str(error.value)
    assert not (tmp_path / "manifest.csv").exists()


def test_every_bad_table_line_is_reported_at_once(tmp_path):
    lines = [table_line(1, "03a01Fa.wav", "x"), table_line(2, "03a01Wa.wav", "90"), "3\tbad"]
    with pytest.raises(CorpusError, match="2 problem") as error:
        read_listening_test(make_corpus(tmp_path, lines, []) / "erkennung.txt")
    assert "line 2: erkannt 'x'" in str(error.value) and "line 4: expected 4" in str(error.value)


@pytest.mark.parametrize("wav, expected", [
    ("03a02Wa.wav", "03a02Wa.wav: not listed in"),
    ("03a02Qa.wav", "03a02Qa.wav: unknown emotion letter 'Q'"),
    ("speaker3.wav", "speaker3.wav: does not match the EmoDB pattern"),
])
def test_bad_wav_files_are_named(tmp_path, wav, expected):
    root = make_corpus(tmp_path, [table_line(1, "03a01Fa.wav", "90,00")], ["03a01Fa.wav", wav])
    with pytest.raises(CorpusError, match="1 bad wav file") as error:
        build_emodb_manifest(root, tmp_path / "manifest.csv")
    assert expected in str(error.value)


def test_missing_or_unreadable_inputs(tmp_path):
    root = make_corpus(tmp_path / "c", [table_line(1, "03a01Fa.wav", "90,00")], ["03a01Fa.wav"])
    (root / "wav" / "03a01Fa.wav").write_bytes(b"RIFF not really")
    with pytest.raises(AudioError, match="03a01Fa.wav is corrupt"):
        build_emodb_manifest(root, tmp_path / "m.csv")

    (root / "erkennung.txt").unlink()
    with pytest.raises(CorpusError, match="listening-test table is missing"):
        build_emodb_manifest(root, tmp_path / "m.csv")

    (root / "erkennung.txt").write_bytes(HEADER.encode("utf-16"))
    with pytest.raises(CorpusError, match="is NUL: the listening-test table is not Latin-1 or UTF-8 text"):
        build_emodb_manifest(root, tmp_path / "m.csv")

    (root / "erkennung.txt").write_bytes(b"Nr;Satz;erkannt;natuerlich\n")
    with pytest.raises(CorpusError, match="line 1: expected the header"):
        build_emodb_manifest(root, tmp_path / "m.csv")

    root = make_corpus(tmp_path / "d", [table_line(1, "03a01Fa.wav", "90,00")], [])
    with pytest.raises(CorpusError, match="no .wav files in the EmoDB wav folder"):
        build_emodb_manifest(root, tmp_path / "m.csv")
    (root / "wav").rmdir()
    with pytest.raises(CorpusError, match="wav folder does not exist"):
        build_emodb_manifest(root, tmp_path / "m.csv")
    with pytest.raises(CorpusError, match="nowhere: the EmoDB folder does not exist"):
        build_emodb_manifest(tmp_path / "nowhere", tmp_path / "m.csv")


@needs_emodb
@pytest.mark.emodb
def test_real_emodb_manifest(tmp_path):
    out = tmp_path / "data" / "emodb" / "manifest.csv"
    summary = build_emodb_manifest(EMODB_ROOT, out)
    assert validate_manifest(out, check_audio=True) == []
    frame = read_manifest(out)

    assert len(frame) == summary.utterances == 535
    assert summary.table_rows == 816 and summary.table_rows_without_wav == 816 - 535
    assert summary.per_emotion == {"anger": 127, "boredom": 81, "disgust": 46, "fear": 69,
                                   "happiness": 71, "neutral": 79, "sadness": 62}
    assert (frame[VOTES].sum(axis=1) == 20).all()
    assert frame["speaker"].nunique() == 10
    first = frame.set_index("utt_id").loc["03a01Fa"]  # erkannt 90 %: 18 of 20 listeners
    assert first["path"] == os.path.relpath(EMODB_ROOT / "wav" / "03a01Fa.wav", out.parent)
    assert first[VOTES].tolist() == [0, 18, 0, 0, 2]
    assert first["duration"] == pytest.approx(soundfile.info(EMODB_ROOT / "wav" / "03a01Fa.wav").duration)

    subsets = frame.apply(subset, axis=1)
    clear = frame[subsets == "clear"]
    winners = clear[VOTES[:-1]].idxmax(axis=1).str.removeprefix("votes_")
    assert Counter(winners) == {"anger": 127, "happiness": 71, "sadness": 62, "neutral": 79}
    assert len(clear) == 339 and clear["speaker"].nunique() == 10
    assert Counter(subsets) == {"clear": 339, "dropped": 196}
    assert pd.Series(summary.per_speaker).sum() == 535
