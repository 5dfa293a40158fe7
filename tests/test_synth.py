"""The embedded synthetic corpus (ser_lib/data/corpora/synth/) and its eSpeak NG binding.

Most checks use the session's `small` corpus (conftest `synth_small`); determinism and
interruption use tiny corpora (`per_speaker`); label statistics of other sizes and seeds
use the plan alone, which has every label without rendering audio.
"""

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from ser_lib.config import DataConfig, SynthConfig
from ser_lib.data.corpora import espeak, synth
from ser_lib.data.corpora.synth import annotators
from ser_lib.errors import ConfigError, SerError
from ser_lib.data.labels import AMBIGUOUS, CLEAR, DROPPED, partition, summarize
from ser_lib.data.manifest import read_manifest

CLASSES = DataConfig().classes
SPEAKERS = [f"Ses{s:02d}{g}" for s in range(1, 6) for g in "FM"]


@pytest.fixture(scope="module")
def small(synth_small):
    return read_manifest(synth_small, check_audio=True)


@pytest.fixture(scope="module")
def audio(small):
    """int16 samples and format info of every utterance of the small corpus."""
    root = Path(small.attrs["root"])
    return {row.utt_id: (soundfile.read(root / row.path, dtype="int16")[0], soundfile.info(str(root / row.path)))
            for row in small.itertuples()}


def longest_zero_run(samples: np.ndarray) -> int:
    return max((len(list(run)) for is_zero, run in itertools.groupby(samples == 0) if is_zero), default=0)


def dominant_class(frame: pd.DataFrame) -> pd.Series:
    true = frame[[f"true_{c}" for c in CLASSES]].to_numpy()
    return pd.Series(np.where(true.max(axis=1) > 0.7, np.array(CLASSES)[true.argmax(axis=1)], ""), index=frame.index)


def active_rms_db(samples: np.ndarray) -> float:
    x = samples.astype(np.float64) / 32768
    energy = np.mean(x[: len(x) // 160 * 160].reshape(-1, 160) ** 2, axis=1)
    return float(10 * np.log10(np.mean(np.sort(energy)[len(energy) // 2:])))


def spectral_centroid(samples: np.ndarray, sample_rate: int = 16000) -> float:
    x = samples.astype(np.float64)
    frames = x[: len(x) // 512 * 512].reshape(-1, 512) * np.hanning(512)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    power = power[power.sum(axis=1) > 1e-3 * power.sum(axis=1).max()]
    return float(np.mean(power @ np.fft.rfftfreq(512, 1 / sample_rate) / power.sum(axis=1)))


# --- layout and format ---------------------------------------------------------------------


def test_ten_speakers_in_five_sessions_like_iemocap(small):
    assert sorted(small["speaker"].unique()) == SPEAKERS
    assert (small["session"] == small["speaker"].str[:5]).all()
    assert small.groupby("speaker").size().eq(synth.UTTERANCES_PER_SPEAKER["small"]).all()
    assert small["utt_id"].is_unique
    for row in small.itertuples():
        assert re.fullmatch(r"Ses0[1-5][FM]_u\d{4}", row.utt_id)
        assert row.path == f"wav/{row.session}/{row.utt_id}.wav"


def test_wavs_are_16k_mono_pcm16_without_digital_silence(small, audio):
    for row in small.itertuples():
        samples, info = audio[row.utt_id]
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), row.path
        assert longest_zero_run(samples) <= 8, row.path
        assert row.duration == pytest.approx(len(samples) / 16000, abs=1e-3)


def test_true_distributions_sum_to_one_and_votes_are_3_to_5_integers(small, synth_small):
    true = small[[f"true_{c}" for c in CLASSES]].to_numpy()
    assert (true >= 0).all()
    np.testing.assert_allclose(true.sum(axis=1), 1.0, atol=1e-9)
    raw = pd.read_csv(synth_small, dtype=str)
    vote_columns = [f"votes_{c}" for c in CLASSES] + ["votes_other"]
    assert raw[vote_columns].map(lambda v: re.fullmatch(r"\d+", v) is not None).all().all()
    totals = raw[vote_columns].astype(int).sum(axis=1)
    assert totals.between(3, 5).all()
    assert set(totals) == {3, 4, 5}
    assert (raw["votes_other"].astype(int) > 0).any()


def test_durations_exercise_padding_and_segmentation(small):
    data = DataConfig()
    durations = small["duration"]
    assert 0.05 <= (durations < data.min_segment_s).mean() <= 0.2
    assert 0.05 <= (durations > data.max_segment_s).mean() <= 0.2
    assert durations.max() <= 10.5
    # Every speaker has both kinds, so each leave-one-speaker-out fold does too.
    assert small.groupby("speaker")["duration"].min().lt(data.min_segment_s).all()
    assert small.groupby("speaker")["duration"].max().gt(data.max_segment_s).all()


# --- labels ----------------------------------------------------------------------------------


def test_small_corpus_is_40_percent_ambiguous_with_clear_samples_of_every_class(small):
    parted = partition(small)
    summary = summarize(parted)
    assert 0.35 <= summary["ambiguous_fraction"] <= 0.45
    assert summary[DROPPED] <= 0.03 * summary["total"]
    for speaker, counts in summary["by_speaker"].items():
        assert min(counts["clear_per_class"].values()) >= 1, speaker
    clear = summary["clear_per_class"]
    assert max(clear.values()) > min(clear.values())  # imbalanced, as in IEMOCAP


@pytest.mark.parametrize("size,seed", [("small", 1), ("small", 2), ("medium", 0), ("medium", 1), ("large", 3)])
def test_ambiguous_fraction_holds_for_other_sizes_and_seeds(size, seed):
    summary = summarize(partition(synth.manifest_frame(synth.plan_corpus(seed, size))))
    assert 0.35 <= summary["ambiguous_fraction"] <= 0.45
    assert summary[DROPPED] <= 0.03 * summary["total"]
    assert summary[CLEAR] + summary[AMBIGUOUS] + summary[DROPPED] == summary["total"]


def test_votes_follow_the_true_distribution(small):
    table = partition(small).table
    clear = table[table["subset"] == CLEAR]
    true = clear[[f"true_{c}" for c in CLASSES]].to_numpy()
    agreement = np.mean(np.array(CLASSES)[true.argmax(axis=1)] == clear["label"].to_numpy())
    assert agreement > 0.9
    # Ambiguous utterances really are mixed: their true distributions are flatter.
    ambiguous = table[table["subset"] == AMBIGUOUS][[f"true_{c}" for c in CLASSES]].to_numpy()
    assert ambiguous.max(axis=1).mean() < true.max(axis=1).mean() - 0.2


# --- prosody ---------------------------------------------------------------------------------


def test_prosody_follows_the_emotion_distribution(small, audio):
    dominant = dominant_class(small)
    loudness = {c: np.mean([active_rms_db(audio[u][0]) for u in small["utt_id"][dominant == c]]) for c in CLASSES}
    brightness = {c: np.mean([spectral_centroid(audio[u][0]) for u in small["utt_id"][dominant == c]])
                  for c in CLASSES}
    assert loudness["anger"] > loudness["neutral"] + 2 > loudness["sadness"] + 4
    assert loudness["happiness"] > loudness["sadness"] + 4
    assert brightness["anger"] > brightness["neutral"] > brightness["sadness"]


def test_speakers_differ():
    utterances = synth.plan_corpus(0, "small")
    by_speaker = pd.DataFrame([(u.speaker, u.voice, u.pitch, u.rate) for u in utterances],
                              columns=["speaker", "voice", "pitch", "rate"]).groupby("speaker")
    assert by_speaker["voice"].first().nunique() == 10
    assert by_speaker["pitch"].mean().nunique() == 10


# --- determinism and robustness --------------------------------------------------------------


def corpus_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files_for_any_worker_count(tmp_path, monkeypatch):
    serial = synth.synthesize_corpus(tmp_path / "a", seed=7, per_speaker=2, progress=False, workers=1)
    monkeypatch.setattr(synth.parallel, "UTTERANCES_PER_WORKER", 1)  # let a tiny corpus use the pool
    parallel = synth.synthesize_corpus(tmp_path / "b", seed=7, per_speaker=2, progress=False, workers=2)
    other = synth.synthesize_corpus(tmp_path / "c", seed=8, per_speaker=2, progress=False, workers=1)
    first = corpus_bytes(serial.parent)
    assert len(first) == 22  # 20 WAVs, the manifest and who gave each vote (annotations.csv)
    assert first == corpus_bytes(parallel.parent)
    second = corpus_bytes(other.parent)
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_interrupted_run_leaves_no_manifest_and_stale_wavs_go(tmp_path, monkeypatch):
    manifest = synth.synthesize_corpus(tmp_path, seed=0, per_speaker=2, progress=False, workers=1)
    assert len(list(tmp_path.glob("wav/*/*.wav"))) == 20
    calls = []
    real = synth.parallel.render_and_write

    def fail_on_third(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(synth.parallel, "render_and_write", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        synth.synthesize_corpus(tmp_path, seed=1, per_speaker=1, progress=False, workers=1)
    assert not manifest.exists()
    monkeypatch.setattr(synth.parallel, "render_and_write", real)
    synth.synthesize_corpus(tmp_path, seed=1, per_speaker=1, progress=False, workers=1)
    assert len(read_manifest(manifest, check_audio=True)) == 10
    assert len(list(tmp_path.glob("wav/*/*.wav"))) == 10
    assert not list(tmp_path.rglob("*.tmp"))


def test_bad_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="huge"):
        synth.plan_corpus(0, "huge")
    with pytest.raises(ConfigError, match="at least 1"):
        synth.plan_corpus(0, per_speaker=0)
    with pytest.raises(ConfigError, match="workers"):
        synth.synthesize_corpus(tmp_path, workers=0, progress=False)


# --- eSpeak NG binding -----------------------------------------------------------------------

TEXT = "The quick brown fox jumps over the lazy dog near the station."


def test_espeak_output_does_not_depend_on_what_came_before():
    first, rate = espeak.synthesize(TEXT, "en+m3", rate=190, pitch=60)
    # eSpeak keeps pitch-flutter and spectrum state in C statics: without a fresh library
    # instance per call these would change the next output.
    espeak.synthesize("Something else entirely, said quickly!", "en+f2", rate=300, pitch=80)
    again, _ = espeak.synthesize(TEXT, "en+m3", rate=190, pitch=60)
    assert rate == 22050
    assert first.dtype == np.float32 and 1.0 < len(first) / rate < 6.0
    np.testing.assert_array_equal(first, again)


def test_espeak_parameters_change_the_output():
    base, _ = espeak.synthesize(TEXT, "en+f3")
    faster, _ = espeak.synthesize(TEXT, "en+f3", rate=300)
    other_noise, _ = espeak.synthesize(TEXT, "en+f3", rand_seed=1)  # f3 is breathy
    assert len(faster) < 0.8 * len(base)
    assert len(other_noise) == len(base) and not np.array_equal(other_noise, base)


def test_espeak_errors_name_the_bad_value(monkeypatch):
    with pytest.raises(ConfigError, match="xx-nonexistent"):
        espeak.synthesize(TEXT, "xx-nonexistent")
    with pytest.raises(ConfigError, match="rate"):
        espeak.synthesize(TEXT, rate=20)
    with pytest.raises(ConfigError, match="empty"):
        espeak.synthesize("  ")
    library, _ = espeak._paths()
    monkeypatch.setattr(espeak, "_paths", lambda: (library, "/nonexistent/data"))
    with pytest.raises(SerError, match="/nonexistent/data"):
        espeak.synthesize(TEXT)
    monkeypatch.setattr(espeak, "_paths", lambda: ("/nonexistent/libespeak-ng.so", "/nonexistent/data"))
    with pytest.raises(SerError, match="/nonexistent/libespeak-ng.so"):
        espeak.synthesize(TEXT)


def test_annotator_temperature_is_the_noise_knob():
    """Noisier annotators: more ambiguous utterances, observed soft labels further from the truth;
    the default (1.5) is the corpus every other test and the demo use."""
    from ser_lib.analysis.divergence import js_divergence

    classes = ["anger", "happiness", "sadness", "neutral"]
    shares, distances = [], []
    for temperature in (1.0, 2.0, 4.0):
        table = partition(synth.manifest_frame(synth.plan_corpus(0, "small", annotator_temperature=temperature))).table
        ambiguous = table[table["subset"] == "ambiguous"]
        shares.append(len(ambiguous) / len(table))
        distances.append(js_divergence(ambiguous[[f"soft_{c}" for c in classes]].to_numpy(),
                                       ambiguous[[f"true_{c}" for c in classes]].to_numpy()).mean())
    assert shares == sorted(shares) and shares[-1] > shares[0] + 0.1
    assert distances == sorted(distances) and distances[-1] > 2 * distances[0]
    default = synth.manifest_frame(synth.plan_corpus(0, "small"))
    explicit = synth.manifest_frame(synth.plan_corpus(0, "small", annotator_temperature=1.5))
    assert default.equals(explicit)
    with pytest.raises(ConfigError, match="annotator_temperature"):
        synth.plan_corpus(0, "small", annotator_temperature=0.5)


def test_annotator_confusion_makes_each_annotator_hear_one_class_as_another():
    """synth.annotator_confusion: each annotator's own (heard, heard as) pair shows in who voted
    what; 0 changes nothing (the default corpus stays byte-identical)."""
    seed, share = 0, 0.6
    plain, confused = synth.plan_corpus(seed, "small"), synth.plan_corpus(seed, "small", annotator_confusion=share)
    assert [u.votes.tolist() for u in synth.plan_corpus(seed, "small", annotator_confusion=0.0)] == \
        [u.votes.tolist() for u in plain]
    shifts = []
    for session_ix, session in enumerate(sorted({u.session for u in plain})):
        pool = annotators.session_pool(seed, session_ix, len(CLASSES), max_temperature=SynthConfig.annotator_temperature,
                                       confusion=share)
        for a, annotator in enumerate(pool):
            heard, heard_as = annotator.confusion

            def rate(utterances):  # how often annotator a says heard_as when the truth is mostly heard
                labels = [k for u in utterances if u.session == session and int(np.argmax(u.true)) == heard
                          for who, k in u.annotations if who == a]
                return np.mean([k == heard_as for k in labels]) if labels else np.nan
            shifts.append(rate(confused) - rate(plain))
    shifts = np.array(shifts)[~np.isnan(shifts)]
    assert len(shifts) >= 20 and np.median(shifts) > 0.3, shifts
