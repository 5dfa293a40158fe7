"""The CREMA-D manifest builder on the real crowd ratings, with short generated WAVs as the audio.

Tests of the real ratings (../shared/data/crema-d) skip without them; the error paths run on small
generated ratings in the same format, so they always run."""

import csv
import io
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile

from conftest import CREMAD_ROOT, needs_cremad
from ser_lib.cli import main
from ser_lib.data.corpora.cremad import LFS_POINTER, build_cremad_manifest
from ser_lib.data.labels import partition, summarize
from ser_lib.data.manifest import read_manifest
from ser_lib.errors import AudioError, ConfigError, CorpusError

VOTES = ["votes_anger", "votes_happiness", "votes_sadness", "votes_neutral", "votes_other"]
# A Git LFS pointer as a checkout without `git lfs pull` has it (130 bytes).
LFS_STUB = (LFS_POINTER + b"\noid sha256:" + b"0" * 64 + b"\nsize 123456\n")


def real_ratings(test):
    """A test on the real ratings: marked `cremad`, skipped without them."""
    return pytest.mark.cremad(needs_cremad(test))


def clip_names() -> list[str]:
    """The clips as SentenceFilenames.csv lists them (not read by the builder)."""
    with open(CREMAD_ROOT / "SentenceFilenames.csv", newline="") as handle:
        return [row["Filename"] for row in csv.DictReader(handle)]


def wav_bytes() -> bytes:
    """250 ms of a 16 kHz tone with noise, as a WAV file."""
    t = np.arange(4000) / 16000
    x = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    buffer = io.BytesIO()
    soundfile.write(buffer, x.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def layout(root, votes=None, summary=None, demographics=None, audio=None, clips=()):
    """A checkout in the public repository's layout: the given files, else links to the real
    CSVs; `audio` links an existing AudioWAV folder, else `clips` get generated WAVs."""
    (root / "processedResults").mkdir(parents=True)
    for target, text, name in ((root / "processedResults" / "tabulatedVotes.csv", votes, "tabulatedVotes.csv"),
                               (root / "processedResults" / "summaryTable.csv", summary, "summaryTable.csv"),
                               (root / "VideoDemographics.csv", demographics, "VideoDemographics.csv")):
        if text is None:
            os.symlink(CREMAD_ROOT / name, target)
        else:
            target.write_text(text)
    if audio is not None:
        os.symlink(audio, root / "AudioWAV")
    else:
        (root / "AudioWAV").mkdir()
        data = wav_bytes()
        for clip in clips:
            (root / "AudioWAV" / f"{clip}.wav").write_bytes(data)
    return root


@pytest.fixture(scope="module")
def full_root(tmp_path_factory):
    """The real ratings and a generated WAV for each of the 7,442 clips."""
    return layout(tmp_path_factory.mktemp("crema-d"), clips=clip_names())


@pytest.fixture(scope="module")
def voice(full_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("manifest") / "manifest.csv"
    summary = build_cremad_manifest(full_root, out)
    return summary, read_manifest(out, check_audio=True).set_index("utt_id")


# Generated ratings in the real files' format: two actors, 3 sentences x 6 emotions each.
LETTERS = "ADFHNS"  # tabulatedVotes.csv's vote columns, in order
EMOTION_LETTERS = {"ANG": "A", "DIS": "D", "FEA": "F", "HAP": "H", "NEU": "N", "SAD": "S"}
VOTES_HEADER = '"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote"\n'
SUMMARY_HEADER = '"","FileName","VoiceVote","VoiceLevel","FaceVote","FaceLevel","MultiModalVote","MultiModalLevel"\n'
DEMOGRAPHICS_HEADER = '"ActorID","Age","Sex","Race","Ethnicity"\n'


def synthetic_votes(clips: list[str]) -> dict[int, dict[str, dict[str, int]]]:
    """{presentation: {clip: counts}}. The winner gets 6 + presentation votes, the next letter
    (cyclically) 1 + stimulus % 3. The intended emotion wins, except in the audio-visual votes
    of every third clip, which neutral wins (sadness for neutral clips): 12 of 36 clips, so that
    presentations mixed up show."""
    votes = {1: {}, 2: {}, 3: {}}
    for stimulus, clip in enumerate(clips, 1):
        for presentation, counts in votes.items():
            winner = EMOTION_LETTERS[clip.split("_")[2]]
            if presentation == 3 and stimulus % 3 == 0:
                winner = "S" if winner == "N" else "N"
            counts[clip] = dict.fromkeys(LETTERS, 0)
            counts[clip][winner] = 6 + presentation
            counts[clip][LETTERS[(LETTERS.index(winner) + 1) % 6]] = 1 + stimulus % 3
    return votes


def votes_line(presentation: int, stimulus: int, clip: str, counts: dict[str, int], responses=None) -> str:
    """A tabulatedVotes.csv row as CREMA-D writes it; numResponses is the votes' sum unless given."""
    total, winner = sum(counts.values()), max(counts, key=counts.get)
    return (f'"{presentation}{stimulus:05d}",{",".join(str(counts[letter]) for letter in LETTERS)},"{clip}",'
            f'{total if responses is None else responses},{counts[winner] / total},"{winner}"\n')


def small_root(tmp_path, actors=("1001", "1002")):
    """Generated ratings (`synthetic_votes`) and audio of two actors: fast to break in one way per
    test. The voice row of clips[0] is on line 2 of tabulatedVotes.csv."""
    clips = [f"{actor}_{sentence}_{emotion}_XX" for actor in actors for sentence in ("IEO", "DFA", "TIE")
             for emotion in EMOTION_LETTERS]
    votes = synthetic_votes(clips)
    rows = [votes_line(p, i, clip, votes[p][clip]) for p in votes for i, clip in enumerate(clips, 1)]
    winners = [[max(votes[p][clip], key=votes[p][clip].get) for p in votes] for clip in clips]
    summary = [f'"{i}","{clip}","{v}","60","{f}","60","{m}","60"\n' for i, (clip, (v, f, m)) in
               enumerate(zip(clips, winners), 1)]
    demographics = "".join(f'{actor},{20 + i},"{("Male", "Female")[i % 2]}","Caucasian","Not Hispanic"\n'
                           for i, actor in enumerate(actors))
    root = layout(tmp_path / "crema-d", votes=VOTES_HEADER + "".join(rows), summary=SUMMARY_HEADER + "".join(summary),
                  demographics=DEMOGRAPHICS_HEADER + demographics, clips=clips)
    return root, clips


@real_ratings
def test_real_ratings_give_every_clip_once(voice):
    summary, frame = voice
    assert summary.utterances == len(frame) == 7442  # the README's count
    assert frame.index.is_unique and sorted(frame.index) == sorted(clip_names())
    assert summary.speakers == frame["speaker"].nunique() == 91
    sexes = frame.groupby("speaker")["sex"].agg(set)
    assert (sexes.map(len) == 1).all()
    assert sexes.map(min).value_counts().to_dict() == {"male": 48, "female": 43}  # README: 48 male, 43 female
    assert summary.presentation_check.startswith("passed: the voice votes")
    assert frame.loc["1001_IEO_NEU_XX", ["speaker", "sex", "age", "intended_emotion", "intensity"]].tolist() == \
        ["1001", "male", "51", "neutral", "XX"]
    assert frame.loc["1001_IEO_HAP_HI", "path"].endswith("AudioWAV/1001_IEO_HAP_HI.wav")
    assert frame["duration"].eq(0.25).all()


@real_ratings
def test_voice_votes_by_hand(voice):
    """Rows read off tabulatedVotes.csv by hand: (A, D, F, H, N, S) of the voice row (first column
    1xxxxx); the face (2xxxxx) and audio-visual (3xxxxx) rows of the same clips differ."""
    frame = voice[1]
    # 100004: A2 D0 F0 H6 N2 S0 (face 200004: H8 N2; audio-visual 300004: H10)
    assert frame.loc["1001_IEO_HAP_HI", VOTES].tolist() == [2, 6, 0, 2, 0]
    # 107439: A0 D0 F1 H0 N6 S3 (face 207439: F2 N7 S1; audio-visual 307439: N5 S4)
    assert frame.loc["1091_WSI_SAD_XX", VOTES].tolist() == [0, 0, 3, 6, 1]
    # 100013: A2 D3 F3 H1 N2 S0: disgust and fear are other
    assert frame.loc["1001_IEO_FEA_HI", VOTES].tolist() == [2, 1, 0, 2, 6]
    # 103248: F8 N1
    assert frame.loc["1040_ITS_FEA_XX", VOTES].tolist() == [0, 0, 0, 1, 8]


@real_ratings
def test_other_presentations_by_hand(full_root, tmp_path):
    face = tmp_path / "face.csv"
    assert main(["manifest", "crema-d", "--root", str(full_root), "--out", str(face), "--ratings", "face"]) == 0
    face = read_manifest(face).set_index("utt_id")
    assert face.loc["1001_IEO_HAP_HI", VOTES].tolist() == [0, 8, 0, 2, 0]
    assert face.loc["1091_WSI_SAD_XX", VOTES].tolist() == [0, 0, 1, 7, 2]
    both = tmp_path / "audiovisual.csv"
    build_cremad_manifest(full_root, both, ratings="audiovisual")
    both = read_manifest(both).set_index("utt_id")
    assert both.loc["1001_IEO_HAP_HI", VOTES].tolist() == [0, 10, 0, 0, 0]
    assert both.loc["1091_WSI_SAD_XX", VOTES].tolist() == [0, 0, 4, 5, 0]


@real_ratings
def test_vote_totals_are_plausible(voice):
    frame = voice[1]
    totals = frame[VOTES].sum(axis=1)
    assert totals.between(4, 12).all() and 9 <= totals.mean() <= 10  # about 10 raters per clip and presentation
    raw = pd.read_csv(CREMAD_ROOT / "tabulatedVotes.csv")
    raw = raw[raw.iloc[:, 0] // 100000 == 1].set_index("fileName")
    assert totals.sum() == raw["numResponses"].sum()
    assert (frame["votes_other"].to_numpy() == raw.loc[frame.index, ["D", "F"]].sum(axis=1).to_numpy()).all()
    # Raters mostly hear the intended emotion, or neutral.
    intended = frame[frame["intended_emotion"] == "anger"]
    assert intended["votes_anger"].sum() > 0.5 * totals[intended.index].sum()


@real_ratings
def test_partition_matches_the_rule_written_out(voice):
    """Table II of the voice ratings, against eq. 1 / eq. 5 applied by hand to the raw counts."""
    frame = voice[1]
    summary = summarize(partition(frame.reset_index()))
    assert summary["clear"] + summary["ambiguous"] + summary["dropped"] == 7442

    def subset(votes):
        total, top = sum(votes), max(votes)
        if top > total / 2:
            return "dropped" if votes.index(top) == len(votes) - 1 else "clear"
        return "ambiguous" if sum(votes[:-1]) > 0 else "dropped"

    expected = frame[VOTES].apply(lambda r: subset(r.tolist()), axis=1).value_counts().to_dict()
    assert {k: summary[k] for k in ("clear", "ambiguous", "dropped")} == expected


def test_mixed_up_presentations_are_an_error(tmp_path):
    """Votes files whose presentation digits are swapped (voice rows marked audio-visual and back)
    parse, but disagree with summaryTable.csv's VoiceVote (on the 12 clips whose majorities differ)."""
    root, clips = small_root(tmp_path)
    votes = root / "processedResults" / "tabulatedVotes.csv"
    swap = {'"1': '"3', '"3': '"1'}
    lines = votes.read_text().splitlines(keepends=True)
    votes.write_text("".join(swap[line[:2]] + line[2:] if line[:2] in swap else line for line in lines))
    with pytest.raises(CorpusError, match=rf"voice votes .* disagree with VoiceVote on 12 of {len(clips)} clips: "
                                          r"are the presentations mixed up"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
    assert not (tmp_path / "manifest.csv").exists()


def test_lfs_pointer_stub_is_a_one_line_error(tmp_path):
    root, clips = small_root(tmp_path)
    (root / "AudioWAV" / f"{clips[3]}.wav").write_bytes(LFS_STUB)
    message = rf"1 of {len(clips)} WAV files are Git LFS pointer stubs.*git lfs pull"
    with pytest.raises(AudioError, match=message) as error:
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
    assert "\n" not in str(error.value) and clips[3] in str(error.value)
    assert not (tmp_path / "manifest.csv").exists()
    assert main(["manifest", "crema-d", "--root", str(root), "--out", str(tmp_path / "m.csv")]) == 2


def test_missing_and_unrated_audio_are_errors(tmp_path):
    root, clips = small_root(tmp_path)
    summary = build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)  # complete: fine
    frame = read_manifest(tmp_path / "manifest.csv", check_audio=True).set_index("utt_id")
    assert summary.utterances == len(frame) == len(clips) == 36 and summary.speakers == 2
    # 1001_IEO_ANG_XX, stimulus 1: A 7 D 2 (other); 1001_IEO_HAP_XX, stimulus 4: H 7 N 2.
    assert frame.loc[clips[0], VOTES].tolist() == [7, 0, 0, 0, 2]
    assert frame.loc["1001_IEO_HAP_XX", VOTES].tolist() == [0, 7, 0, 2, 0]
    assert frame.loc["1002_TIE_SAD_XX", ["speaker", "sex", "intended_emotion"]].tolist() == \
        ["1002", "female", "sadness"]
    (root / "AudioWAV" / f"{clips[5]}.wav").unlink()
    with pytest.raises(CorpusError, match=rf"1 clip\(s\) of the votes have no WAV file\n  {clips[5]}.wav"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
    shutil.copy(root / "AudioWAV" / f"{clips[0]}.wav", root / "AudioWAV" / f"{clips[5]}.wav")
    shutil.copy(root / "AudioWAV" / f"{clips[0]}.wav", root / "AudioWAV" / "1003_IEO_NEU_XX.wav")
    with pytest.raises(CorpusError, match=r"1 WAV file\(s\) have no votes .*\n  1003_IEO_NEU_XX.wav"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)


def test_missing_and_malformed_metadata_are_errors(tmp_path):
    root, clips = small_root(tmp_path)
    with pytest.raises(ConfigError, match="ratings must be one of"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", ratings="video")
    with pytest.raises(CorpusError, match="36 clips per presentation, CREMA-D has 7442"):
        build_cremad_manifest(root, tmp_path / "manifest.csv")
    (root / "VideoDemographics.csv").unlink()
    with pytest.raises(CorpusError, match=r"VideoDemographics.csv: the demographics table is missing"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
    (root / "VideoDemographics.csv").write_text(DEMOGRAPHICS_HEADER + '1001,51,"Male","",""\n')
    with pytest.raises(CorpusError, match=r"actor\(s\) \['1002'\] have clips but no demographics row"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)

    votes = root / "processedResults" / "tabulatedVotes.csv"
    lines = votes.read_text().splitlines(keepends=True)
    votes.write_text("".join(lines + [lines[1]]))  # voice row of clips[0] again
    twice = rf"line {len(lines) + 1}: clip {clips[0]} appears twice in presentation 1 \(first on line 2\)"
    with pytest.raises(CorpusError, match=twice):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
    counts = synthetic_votes(clips)[1][clips[0]]
    votes.write_text("".join([lines[0], votes_line(1, 1, clips[0], counts, responses=10), *lines[2:]]))
    with pytest.raises(CorpusError, match=rf"line 2: {clips[0]}: the votes .* do not add up to numResponses 10"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
    votes.write_text("".join([lines[0], *lines[2:]]))  # the voice row of one clip is gone
    with pytest.raises(CorpusError, match=rf"clip {clips[0]} has no rows for the presentation\(s\) \['voice'\]"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
    (root / "processedResults" / "summaryTable.csv").unlink()
    votes.write_text("".join(lines))
    with pytest.raises(CorpusError, match="summaryTable.csv: the summary table is missing"):
        build_cremad_manifest(root, tmp_path / "manifest.csv", expected_clips=None)
