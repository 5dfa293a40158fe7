import pandas as pd
import pytest

from ser_lib.errors import ManifestError
from ser_lib.data.manifest import read_manifest, validate_manifest, write_manifest

HEADER = "utt_id,path,speaker,votes_anger,votes_happiness,votes_sadness,votes_neutral,votes_other"


def write(tmp_path, text, name="manifest.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_bad_row_is_reported_with_its_line_and_reason(tmp_path):
    (tmp_path / "ok.wav").write_bytes(b"")
    path = write(tmp_path, "\n".join([
        HEADER + ",mood",
        "a,ok.wav,s1,1,2,0,0,0,x",        # line 2: fine but for the unknown column
        "a,ok.wav,s1,0,1,0,0,0,x",        # line 3: duplicate id
        ",ok.wav,s1,1,0,0,0,0,x",         # line 4: missing id
        "c,ok.wav,s1,-1,1,0,0,0,x",       # line 5: negative
        "d,ok.wav,s1,one,1,0,0,0,x",      # line 6: non-numeric
        "e,ok.wav,s1,0,0,0,0,0,x",        # line 7: all zero
        "f,gone.wav,s1,1,0,0,0,0,x",      # line 8: missing audio
    ]) + "\n")
    problems = [str(p) for p in validate_manifest(path)]
    expected = [
        "line 1: unknown column(s) ['mood']",
        "line 3: duplicate utt_id 'a' (first on line 2)",
        "line 4: missing utt_id",
        "line 5: votes_anger=-1 is negative",
        "line 6: votes_anger='one' is not a number",
        "line 7: all votes are zero",
        f"line 8: audio file {tmp_path / 'gone.wav'} does not exist",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert len(problems) == len(expected)
    with pytest.raises(ManifestError, match="7 problem"):
        read_manifest(path, check_audio=True)
    with pytest.raises(ManifestError, match="6 problem"):  # labels only: audio not checked
        read_manifest(path)


def test_missing_required_columns_and_unreadable_files(tmp_path):
    assert "missing required column(s) ['speaker']" in str(
        validate_manifest(write(tmp_path, "utt_id,path,votes_anger\na,a.wav,1\n"))[0])
    latin = tmp_path / "latin.csv"
    latin.write_bytes((HEADER + "\n").encode() + "é,a.wav,s,1,0,0,0,0\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="latin.csv: not UTF-8"):
        validate_manifest(latin)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nothing.csv")


def test_start_end_and_labels_only_reading(tmp_path):
    path = write(tmp_path, "utt_id,path,speaker,start,end,votes_anger,votes_other\n"
                           "a,x.wav,s,2.0,1.0,1,0\nb,x.wav,s,0.5,1.5,1.5,0.5\n")
    assert [str(p) for p in validate_manifest(path, check_audio=False)] == [
        "line 2: end=1 is not after start=2"]
    path = write(tmp_path, "utt_id,path,speaker,start,end,votes_anger,votes_other\n"
                           "b,x.wav,s,0.5,1.5,1.5,0.5\n", "ok.csv")
    frame = read_manifest(path)  # the audio file need not exist to read labels
    assert frame["votes_anger"].tolist() == [1.5] and frame["start"].dtype.kind == "f"


def test_write_is_canonical_and_roundtrips(tmp_path):
    frame = pd.DataFrame({"votes_other": [0], "speaker": ["s"], "path": ["a.wav"], "utt_id": ["a"],
                          "true_anger": [1.0], "votes_anger": [3]})
    path = write_manifest(frame, tmp_path / "sub" / "m.csv")
    assert path.read_text().splitlines()[0] == "utt_id,path,speaker,votes_anger,votes_other,true_anger"
    assert read_manifest(path)["votes_anger"].tolist() == [3]
    assert not [p for p in path.parent.iterdir() if p.name != "m.csv"], "temporary files left behind"
    with pytest.raises(ManifestError, match="unknown column"):
        write_manifest(frame.assign(extra=1), tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
