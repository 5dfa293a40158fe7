"""The pretraining audio beyond eSpeak: Flite's voices, the distortions of the encoder's input, and
the encoder sizes of the size curve."""

import os
import shutil

import numpy as np
import pytest
import torch

from ser_lib.config import Config, FeatureConfig, ModelConfig, apply_overrides
from ser_lib.data import distortions
from ser_lib.data.corpora import flite
from ser_lib.data.corpora.synth import unlabelled
from ser_lib.data.prosody import F0_COLUMN, prosody_frames, prosody_names
from ser_lib.errors import ConfigError, SerError
from ser_lib.model.encoder import build_encoder
from ser_lib.train import pretrain as pretraining

TEXT = "The quiet river carried every lantern past the old mill before morning."


@pytest.fixture
def needs_flite():
    """Flite is a Debian package: missing, its tests skip under a plain `make test` and fail in CI,
    where `.ci/run` installs it."""
    if shutil.which("flite") is None:
        message = "no `flite` program: install it with `apt-get install flite` (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def mean_f0_semitones(audio: np.ndarray, sample_rate: int) -> float:
    frames = prosody_frames(torch.from_numpy(audio), sample_rate, 320, len(audio) // 320 - 2).numpy()
    f0 = frames[:, prosody_names().index(F0_COLUMN)]
    return float(f0[f0 > 0].mean())


def test_flite_speech_is_deterministic_and_follows_pitch_and_rate(needs_flite):
    audio, rate = flite.synthesize(TEXT, "slt")
    again, _ = flite.synthesize(TEXT, "slt")
    assert rate == 16000 and np.array_equal(audio, again)
    high, _ = flite.synthesize(TEXT, "slt", pitch=80)
    low, _ = flite.synthesize(TEXT, "slt", pitch=20)
    # 60 pitch steps of 0.2 semitones: 12 semitones apart
    assert 9 < mean_f0_semitones(high, rate) - mean_f0_semitones(low, rate) < 15
    fast, _ = flite.synthesize(TEXT, "rms", rate=260)
    slow, _ = flite.synthesize(TEXT, "rms", rate=130)
    assert 1.6 < len(slow) / len(fast) < 2.4


def test_flite_errors_name_the_voice_and_the_missing_program(monkeypatch):
    with pytest.raises(ConfigError, match="'kal8'"):
        flite.synthesize(TEXT, "kal8")
    monkeypatch.setattr(flite.shutil, "which", lambda _: None)
    with pytest.raises(SerError, match="apt-get install flite"):
        flite.synthesize(TEXT, "slt")


def test_flite_pretraining_speech_has_its_own_voices_and_sentences(needs_flite, tmp_path):
    planned = unlabelled.plan_unlabelled(0.01, num_speakers=8, synthesizer="flite")
    assert {u.voice for u in planned} == {f"flite:{v}" for v in flite.VOICE_F0_HZ}
    espeak = unlabelled.plan_unlabelled(0.01, num_speakers=8)
    assert [u.words for u in planned[:5]] != [u.words for u in espeak[:5]]  # its own plan stream
    manifest = unlabelled.synthesize_unlabelled(tmp_path / "a", 0.004, num_speakers=4, synthesizer="flite",
                                                progress=False)
    again = unlabelled.synthesize_unlabelled(tmp_path / "b", 0.004, num_speakers=4, synthesizer="flite",
                                             workers=1, progress=False)
    assert manifest.read_bytes() == again.read_bytes()
    first = sorted((tmp_path / "a" / "wav").rglob("*.wav"))[0]
    assert first.read_bytes() == (tmp_path / "b" / first.relative_to(tmp_path / "a")).read_bytes()
    with pytest.raises(ConfigError, match="'festival'"):
        unlabelled.plan_unlabelled(0.01, synthesizer="festival")


def test_reverb_keeps_the_speech_in_time_and_noise_meets_its_snr():
    rng = np.random.default_rng(0)
    responses = distortions.room_impulse_responses(rng, count=2)
    assert all(abs(r).max() == 1.0 and len(r) > 1000 for r in responses)
    clicks = np.zeros(16000)
    clicks[[4000, 9000]] = 1.0
    wet = distortions.reverberate(clicks, responses[0])
    assert len(wet) == len(clicks) and set(np.argsort(np.abs(wet))[-2:]) == {4000, 9000}
    tone = np.sin(np.arange(32000) / 16000 * 2 * np.pi * 220) * 0.1
    for _ in range(5):
        noise = distortions.add_noise(tone, rng) - tone
        snr = 20 * np.log10(np.sqrt(np.mean(tone**2)) / np.sqrt(np.mean(noise**2)))
        assert distortions.SNR_RANGE_DB[0] - 0.01 < snr < distortions.SNR_RANGE_DB[1] + 0.01


def test_distorted_batches_keep_clean_targets_and_replay(tmp_path):
    manifest = unlabelled.synthesize_unlabelled(tmp_path, hours=0.004, num_speakers=2, progress=False)
    sources, _ = pretraining.collect_sources([manifest], [], task_adaptive=False)
    corpus = pretraining.load_corpus(sources, 16000, FeatureConfig(), progress=False)
    corpus.impulse_responses = distortions.room_impulse_responses(np.random.default_rng(1), count=2)
    clean = pretraining.draw_batch(corpus, 4, 1.0, seed=0, step=3)
    distorted = pretraining.draw_batch(corpus, 4, 1.0, seed=0, step=3, distortions=("reverb", "noise"),
                                       distortion_prob=1.0)
    replay = pretraining.draw_batch(corpus, 4, 1.0, seed=0, step=3, distortions=("reverb", "noise"),
                                    distortion_prob=1.0)
    assert torch.equal(clean["frames"], distorted["frames"]) and torch.equal(clean["sample_mask"],
                                                                             distorted["sample_mask"])
    assert not torch.allclose(clean["waveform"], distorted["waveform"])
    assert torch.equal(distorted["waveform"], replay["waveform"])
    assert torch.all(distorted["waveform"][~distorted["sample_mask"]] == 0)  # padding stays silent


def test_pretraining_settings_refuse_unknown_distortions_and_synthesizers():
    for key, value in (("pretrain.distortions", "reverb,echo"), ("pretrain.distortion_prob", "1.5"),
                       ("pretrain.synthesizer", "mbrola")):
        config = Config()
        apply_overrides(config, {key: value})
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            config.validate()


def test_encoder_sizes_grow_and_the_largest_fits_the_package():
    sizes = {name: sum(p.numel() for p in build_encoder(ModelConfig(encoder=name)).parameters())
             for name in ("tiny", "small", "medium")}
    assert sizes["tiny"] == 255_552  # the shipped encoder's architecture is unchanged
    assert sizes["tiny"] < sizes["small"] < sizes["medium"]
    assert 4 * sizes["medium"] <= 20_000_000  # fp32 safetensors within the package's 20 MB
