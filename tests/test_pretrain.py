"""Pretraining: the unlabelled speech, the objectives, the run (loss falls, resumes, detects collapse)
and the shipped encoder loaded through `model.encoder`."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ser_lib.cli import main
from ser_lib.config import PRETRAINED_ENCODER, PretrainConfig, load_config
from ser_lib.data.corpora import synth
from ser_lib.data.corpora.synth import unlabelled
from ser_lib.data.manifest import read_manifest
from ser_lib.data.prosody import F0_COLUMN, prosody_frames, prosody_names
from ser_lib.errors import ConfigError, ManifestError
from ser_lib.model.encoder import SHIPPED_ENCODERS, build_encoder
from ser_lib.model.masks import time_mask
from ser_lib.model.pretraining import _sample_negative_indices, collapse_reasons, span_mask
from ser_lib.train import pretrain as pretraining


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """About 70 s of unlabelled speech from 6 speakers."""
    out = tmp_path_factory.mktemp("pretrain-speech")
    return unlabelled.synthesize_unlabelled(out, hours=0.02, num_speakers=6, progress=False)


def quick(**overrides) -> dict:
    settings = {"pretrain.steps": 24, "pretrain.batch_size": 4, "pretrain.crop_s": 1.5, "pretrain.num_clusters": 8,
                "pretrain.kmeans_frames": 5000, "pretrain.log_every": 4, "pretrain.checkpoint_every": 8,
                "pretrain.lr": 2e-3, "runtime.threads": 1}
    return settings | overrides


def run(speech: Path, out: Path, utterances: int | None = None, **overrides) -> dict:
    config = load_config("demo", overrides=quick(**overrides))
    sources, described = pretraining.collect_sources([speech], [], task_adaptive=False)
    return pretraining.pretrain(config, sources[:utterances], described, out, progress=False)


def test_unlabelled_speech_has_its_own_speakers_and_words():
    evaluation = {v for pair in synth.VOICES for v in pair}
    voices = [voice for _, voice in unlabelled.speakers(len(unlabelled.ACCENTS) * 4)]
    assert not {v.split("+")[1] for v in voices} & evaluation
    assert {v.split("+")[0] for v in voices} == set(unlabelled.ACCENTS)

    def content_words(vocabulary):
        words = set()
        for part in (vocabulary.subjects, vocabulary.verbs, vocabulary.adjectives, vocabulary.nouns, vocabulary.places):
            words |= {w.lower() for phrase in part for w in phrase.split()}
        return words - {"the", "a", "at", "in", "on", "my", "our", "by", "after", "before", "this", "his", "her"}

    assert not content_words(synth.EVALUATION_VOCABULARY) & content_words(unlabelled.PRETRAINING_VOCABULARY)


def test_unlabelled_speech_is_deterministic_and_has_no_votes(speech, tmp_path):
    again = unlabelled.synthesize_unlabelled(tmp_path, hours=0.02, num_speakers=6, progress=False)
    assert again.read_bytes() == speech.read_bytes()
    frame = read_manifest(speech, check_audio=True, labelled=False)
    assert list(frame.columns) == ["utt_id", "path", "speaker", "duration"]
    assert frame["duration"].sum() > 0.02 * 3600 * 0.8 and frame["speaker"].nunique() == 6
    first = frame["path"].iloc[0]
    assert (tmp_path / first).read_bytes() == (speech.parent / first).read_bytes()
    with pytest.raises(ManifestError, match="no votes_<class> columns"):
        read_manifest(speech)


def test_prosody_targets_follow_pitch_voicing_and_loudness_at_the_encoders_frame_rate():
    """A loud 220 Hz tone, near silence, then a quieter 110 Hz tone: per 20 ms encoder frame, F0 is
    an octave (12 semitones) lower in the second tone, voicing is 1 in the tones and 0 between them,
    and loudness follows the amplitude."""
    rate, stride = 16000, pretraining.FRAME_STRIDE
    t = np.arange(rate) / rate
    quiet = 0.001 * np.random.default_rng(0).standard_normal(rate // 2)
    samples = torch.from_numpy(np.concatenate([0.5 * np.sin(2 * np.pi * 220 * t), quiet,
                                               0.1 * np.sin(2 * np.pi * 110 * t)]).astype(np.float32))
    num_frames = 1 + (len(samples) - 400) // stride
    targets = prosody_frames(samples, rate, stride, num_frames)
    names = prosody_names()
    assert targets.shape == (num_frames, len(names)) and names[-1] == "voiced"
    f0, voiced, loudness = (targets[:, names.index(n)] for n in (F0_COLUMN, "voiced", "Loudness_sma3"))
    first, gap, second = slice(10, 40), slice(55, 70), slice(85, 115)  # frames well inside each part
    assert voiced[first].min() == 1 and voiced[second].min() == 1 and voiced[gap].max() == 0
    assert f0[first].mean() - f0[second].mean() == pytest.approx(12, abs=0.5)
    assert loudness[first].mean() > loudness[second].mean() > loudness[gap].mean()
    with pytest.raises(ValueError, match="multiple of 160"):
        prosody_frames(samples, rate, 100, num_frames)


def test_labelled_manifest_needs_task_adaptive(tiny_corpus):
    with pytest.raises(ConfigError, match="task-adaptive"):
        pretraining.collect_sources([tiny_corpus], [], task_adaptive=False)
    sources, described = pretraining.collect_sources([tiny_corpus], [], task_adaptive=True)
    assert len(sources) == 32 and "task-adaptive" in described[0]


@pytest.mark.parametrize("objective,workers", [("hubert", 0.0), ("tera", 0.0), ("tera", 1.0)])
def test_pretraining_loss_falls_and_the_encoder_loads(speech, tmp_path, objective, workers):
    # Two utterances, so that 100 steps are enough to learn them: random batches of a larger corpus
    # make the loss of a few steps too noisy to show a fall.
    summary = run(speech, tmp_path / objective, utterances=2,
                  **{"pretrain.objective": objective, "pretrain.steps": 100, "pretrain.crop_s": 1.0,
                     "pretrain.log_every": 16, "pretrain.prosody_weight": workers})
    losses = [row["loss"] for row in summary["history"]]
    assert np.mean(losses[-2:]) < losses[0] - 0.2, losses
    if objective == "tera":  # learning means beating the mean frame
        assert summary["final"]["reconstruction_l1"] < summary["final"]["mean_frame_l1"]
    if workers:  # the prosody workers learn too: their MSE falls below the mean predictor's
        worker_mse = [row["prosody_mse"] for row in summary["history"]]
        assert worker_mse[-1] < 0.8 * summary["final"]["prosody_mean_mse"], worker_mse
        assert worker_mse[-1] < worker_mse[0], worker_mse
        assert len(summary["prosody_scale"]["mean"]) == len(prosody_names())
    else:
        assert "prosody_mse" not in summary["final"] and summary["prosody_scale"] is None
    assert not summary["collapsed"]
    saved = json.loads((tmp_path / objective / "pretraining.json").read_text())
    assert saved["final"]["loss"] == summary["final"]["loss"]
    assert (tmp_path / objective / "pretraining_curves.png").stat().st_size > 10_000
    assert not (tmp_path / objective / pretraining.STATE_FILE).exists()
    # model.encoder=FOLDER loads exactly what was pretrained
    config = load_config("demo", overrides={"model.encoder": str(tmp_path / objective)})
    loaded = build_encoder(config.model).state_dict()
    trained = load_file(tmp_path / objective / "model.safetensors")
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)
    random = build_encoder(load_config("demo", overrides={"model.encoder": "tiny"}).model).state_dict()
    assert not torch.equal(random["feature_extractor.conv_layers.0.conv.weight"],
                           loaded["feature_extractor.conv_layers.0.conv.weight"])


def test_wav2vec2_objective_runs_and_reports_its_codebook(speech, tmp_path):
    summary = run(speech, tmp_path / "w2v", **{"pretrain.objective": "wav2vec2", "pretrain.steps": 8,
                                               "pretrain.codevectors_per_group": 16, "pretrain.num_negatives": 10})
    final = summary["final"]
    # Per masked frame, as transformers' example normalises it: the diversity loss is then the share of
    # the 2 x 16 codevectors left unused, (G·V - perplexity) / G·V (summed over frames it was ~500).
    assert final["diversity"] == pytest.approx((32 - final["codevector_perplexity"]) / 32, abs=1e-4)
    assert 0.0 < final["contrastive"] < 2 * np.log(11)  # per frame, near log(1 + distractors) at the start


def test_resumed_run_equals_an_uninterrupted_one(speech, tmp_path, monkeypatch):
    whole = run(speech, tmp_path / "whole")
    real_draw = pretraining.draw_batch

    def interrupted(corpus, batch_size, crop_s, seed, step, *distortions):
        if step == 13:
            raise KeyboardInterrupt
        return real_draw(corpus, batch_size, crop_s, seed, step, *distortions)

    monkeypatch.setattr(pretraining, "draw_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(speech, tmp_path / "resumed")
    assert (tmp_path / "resumed" / pretraining.STATE_FILE).exists()
    with pytest.raises(ConfigError, match="--resume"):
        run(speech, tmp_path / "resumed")
    monkeypatch.setattr(pretraining, "draw_batch", real_draw)
    config = load_config("demo", overrides=quick())
    sources, described = pretraining.collect_sources([speech], [], task_adaptive=False)
    resumed = pretraining.pretrain(config, sources, described, tmp_path / "resumed", resume=True, progress=False)
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in whole["history"]]
    digest = [hashlib.sha256((tmp_path / d / "model.safetensors").read_bytes()).hexdigest() for d in ("whole", "resumed")]
    assert digest[0] == digest[1]


def test_collapsed_objective_is_detected_and_fails_the_command(speech, tmp_path, capsys):
    # One cluster: every frame has the same target, the loss is 0 from the start.
    code = main(["pretrain", "--manifest", str(speech), "--out", str(tmp_path / "collapsed"),
                 *[f"--set={k}={v}" for k, v in quick(**{"pretrain.objective": "hubert", "pretrain.num_clusters": 1,
                                                           "pretrain.steps": 8}).items()]])
    assert code == 1
    assert "collapsed" in capsys.readouterr().err
    summary = json.loads((tmp_path / "collapsed" / "pretraining.json").read_text())
    assert summary["collapsed"] and "loss fell" in summary["collapse_reasons"][0]


def test_span_masks_and_negatives_keep_their_random_stream():
    """Masks and negatives come from transformers' private `_compute_mask_indices` and
    `_sample_negative_indices` (pyproject.toml bounds transformers below 6): for a seed, the same
    draws and the same numpy RNG consumption as on transformers 5.23, or runs stop reproducing."""
    frame_mask = time_mask(torch.tensor([16, 10]), 16)
    np.random.seed(0)
    masked = span_mask(frame_mask, PretrainConfig(mask_prob=0.3, mask_length=3))
    assert masked.int().tolist() == [[0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                                     [0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]]
    negatives = _sample_negative_indices((2, 16), 2, mask_time_indices=masked.numpy())
    # Row b's indices are offset by 16 b: each masked frame gets two other masked frames of its row.
    assert negatives[masked.numpy()].tolist() == [[2, 3], [8, 7], [1, 7], [1, 3], [6, 1], [2, 6],
                                                  [22, 22], [18, 20], [19, 19], [18, 20], [23, 21], [21, 20]]
    assert np.random.randint(1000) == 183


def test_collapse_reasons_read_the_last_window():
    config = PretrainConfig(objective="wav2vec2")
    healthy = [{"step": s, "loss": 3.0, "contrastive": 2.5, "codevector_perplexity": 90.0, "frame_std": 0.6}
               for s in range(8)]
    assert collapse_reasons(healthy, config) == []
    collapsed = healthy + [{"step": 9 + s, "loss": 0.5, "contrastive": 0.4, "codevector_perplexity": 2.0, "frame_std": 0.01}
                           for s in range(4)]
    reasons = collapse_reasons(collapsed, config)
    assert any("codevector perplexity 2.0 of 128" in r for r in reasons)
    assert any("vary little" in r for r in reasons)
    # wav2vec 2.0 on the pretraining speech: 500 steps at chance, with a healthy codebook
    stuck = [{"loss": 3.934, "contrastive": 3.931, "codevector_perplexity": 125.0, "frame_std": 0.65}] * 4
    assert any("at chance" in r for r in collapse_reasons(stuck, config))
    tera = PretrainConfig(objective="tera")
    assert collapse_reasons([{"loss": 2.0, "reconstruction_l1": 2.0, "mean_frame_l1": 2.3, "frame_std": 0.7}], tera) == []
    assert "nothing learned" in collapse_reasons([{"loss": 2.3, "reconstruction_l1": 2.3, "mean_frame_l1": 2.3,
                                                   "frame_std": 0.7}], tera)[0]
    # Prosody workers no better than each descriptor's mean: the reconstruction alone does not hide it.
    workers = PretrainConfig(objective="tera", prosody_weight=1.0)
    stuck_workers = [{"loss": 3.0, "reconstruction_l1": 2.0, "mean_frame_l1": 2.3, "frame_std": 0.7,
                      "prosody_mse": 1.0, "prosody_mean_mse": 0.99}]
    assert collapse_reasons(stuck_workers, tera) == []
    assert "prosody workers" in collapse_reasons(stuck_workers, workers)[0]
    hubert = PretrainConfig(objective="hubert", num_clusters=100)
    assert collapse_reasons([{"loss": 2.0, "prediction_perplexity": 3.0, "frame_std": 0.5}], hubert)


def test_shipped_encoder_loads_through_model_encoder():
    folder = SHIPPED_ENCODERS[PRETRAINED_ENCODER]
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "pretraining.json"} <= files
    assert sum(p.stat().st_size for p in folder.iterdir()) < 20e6
    summary = json.loads((folder / "pretraining.json").read_text())
    assert not summary["collapsed"] and not summary["task_adaptive"]

    from ser_lib.model import SERModel

    config = load_config("demo", overrides={"model.encoder": PRETRAINED_ENCODER})
    model = SERModel(config.model, num_classes=4).eval()
    encoder = model.temporal.encoder.state_dict()
    random = build_encoder(load_config("demo", overrides={"model.encoder": "tiny"}).model).state_dict()
    assert encoder.keys() == random.keys()
    assert not torch.equal(encoder["encoder.layers.0.attention.q_proj.weight"],
                           random["encoder.layers.0.attention.q_proj.weight"])
    waveform = torch.randn(2, 24000)
    with torch.no_grad():
        logits = model({"waveform": waveform, "waveform_lengths": torch.tensor([24000, 16000]),
                        "fbank": torch.randn(2, 148, 40), "fbank_lengths": torch.tensor([148, 98])})["logits"]
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_probe_command_scores_a_frozen_encoder(tiny_corpus, capsys):
    assert main(["probe", "--manifest", str(tiny_corpus), "--json", "--set", "model.encoder=tiny",
                 "--set", "runtime.threads=1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["utterances"] == 24 and 0.0 <= result["ua"] <= 1.0
    assert sorted(result["per_speaker_ua"]) == ["S1F", "S1M", "S2F", "S2M"]


def test_probe_of_every_layer_holds_the_last_layer_and_the_ones_below(tiny_corpus, capsys):
    from ser_lib.analysis.probe import pooled_embeddings
    from ser_lib.data.labels import CLEAR, partition

    config = load_config("demo", overrides={"model.encoder": PRETRAINED_ENCODER, "runtime.threads": 1})
    clear = partition(read_manifest(tiny_corpus), config.data).of_subset(CLEAR)
    last = pooled_embeddings(config, clear, progress=False)
    every = pooled_embeddings(config, clear, progress=False, layers="all")
    assert last.shape == (24, 96) and every.shape == (24, 3 * 96)  # the tiny encoder: 2 layers + their input
    np.testing.assert_allclose(every[:, -96:], last, atol=1e-4)  # each segment alone = the padded batch
    assert not np.allclose(every[:, :96], last, atol=1e-2)
    assert main(["probe", "--manifest", str(tiny_corpus), "--layers", "all", "--json", "--set", "runtime.threads=1"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"] == "all"
    assert main(["probe", "--manifest", str(tiny_corpus), "--layers", "all", "--encoders", "tiny"]) == 2
    assert "--layers all probes one encoder" in capsys.readouterr().err


def test_probe_curve_reports_every_encoder_with_how_it_was_built(tiny_corpus, tmp_path, capsys):
    shipped = str(SHIPPED_ENCODERS[PRETRAINED_ENCODER])
    prefix = tmp_path / "curve" / "encoder-sizes"
    assert main(["probe", "--manifest", str(tiny_corpus), "--encoders", "tiny", shipped, "--report", str(prefix),
                 "--set", "runtime.threads=1"]) == 0
    rows = json.loads(prefix.with_suffix(".json").read_text())
    assert [row["label"] for row in rows] == ["tiny", PRETRAINED_ENCODER]
    built = json.loads((SHIPPED_ENCODERS[PRETRAINED_ENCODER] / "pretraining.json").read_text())
    assert rows[1]["steps"] == built["settings"]["steps"] and rows[1]["objective"] == built["objective"]
    assert rows[0]["steps"] == 0 and rows[0]["parameters"] == rows[1]["parameters"] == 255_552
    assert all(0 <= row["probe_ua"] <= 100 and row["utterances"] == 24 for row in rows)
    table = prefix.with_suffix(".md").read_text()
    assert (f"| {PRETRAINED_ENCODER} | 0.26 M | 1.0 | tera | {built['settings']['steps']} | {built['seed']} | "
            f"{built['corpus_hours']:.2f} |") in table
    assert prefix.with_suffix(".png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["probe", "--manifest", str(tiny_corpus), "--report", str(prefix)]) == 2
    assert "--report needs --encoders" in capsys.readouterr().err


def test_probe_scores_its_features_leave_one_speaker_out(tiny_corpus, monkeypatch):
    """The probe's scoring on given features: ones that name each utterance's class score UA 1 on
    every held-out speaker; constant ones score chance, 1 / 4 classes."""
    from ser_lib.analysis import probe

    config = load_config("demo")
    noise = np.random.default_rng(0)
    classes = ["anger", "happiness", "sadness", "neutral"]

    def named(config, parted, progress, layers):
        return np.array([[float(label == c) for c in classes] for label in parted.table["label"]]) \
            + 0.01 * noise.standard_normal((len(parted), len(classes)))

    monkeypatch.setattr(probe, "pooled_embeddings", named)
    perfect = probe.linear_probe(config, str(tiny_corpus), progress=False)
    assert perfect["ua"] == 1.0 and set(perfect["per_speaker_ua"].values()) == {1.0}
    monkeypatch.setattr(probe, "pooled_embeddings", lambda config, parted, progress, layers: np.zeros((len(parted), 4)))
    assert probe.linear_probe(config, str(tiny_corpus), progress=False)["ua"] == pytest.approx(0.25)
