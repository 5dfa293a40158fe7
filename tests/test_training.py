"""Two-stage training end to end on a tiny corpus: results, resume, errors, prediction."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ser_lib.cli import main as ser
from ser_lib.config import load_config
from ser_lib.errors import TrainingError
from ser_lib.data.labels import load_partition
from ser_lib.train.loso import run_loso
from ser_lib.data.folds import loso_folds
from ser_lib.method.label_store import LabelStore
from ser_lib.predict import predict_file
from ser_lib.train.algorithm import train_fold

def quick_config(quick, **overrides):
    return load_config("demo", overrides={**quick, **overrides})


def fold_of(config, manifest, speaker="S1F"):
    parted = load_partition(manifest, config.data)
    config.eval.folds = (speaker,)
    return parted, loso_folds(parted, config.eval)[0]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("speed", [{}, {"model.freeze_feature_encoder": False, "runtime.precision": "fp32"},
                                   {"runtime.precision": "bf16", "runtime.threads": 1},
                                   {"correction.update": "running"}])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_corpus, tmp_path, quick, speed):
    config = quick_config(quick, **speed)
    parted, fold = fold_of(config, tiny_corpus)
    straight = train_fold(config, parted, fold, tmp_path / "straight", progress=False)

    def stop_in_stage2(stage, epoch):
        if (stage, epoch) == ("stage2", 1):
            raise Interrupt

    with pytest.raises(Interrupt):
        train_fold(config, parted, fold, tmp_path / "resumed", progress=False, on_epoch_end=stop_in_stage2)
    assert not (tmp_path / "resumed" / "fold_result.json").exists()
    resumed = train_fold(config, parted, fold, tmp_path / "resumed", resume=True, progress=False)

    for key in ("wa", "ua", "confusion", "js_observed_to_true", "js_corrected_to_true", "best_epoch"):
        assert resumed[key] == straight[key], key
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]
    a = LabelStore.load(tmp_path / "straight" / "label_history.npz")
    b = LabelStore.load(tmp_path / "resumed" / "label_history.npz")
    assert a.epochs == b.epochs == [0, 1, 2]
    for sample_id in a.ids:
        np.testing.assert_array_equal(a.history(sample_id), b.history(sample_id))
    weights_a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["model"]
    weights_b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_loso_run_folder_and_ambiguous_labels_move(tiny_corpus, tmp_path, quick):
    config = quick_config(quick, **{"eval.folds": "S1F,S2M"})
    results = run_loso(config, tiny_corpus, tmp_path / "run", progress=False)
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["wa"] == results["wa"]
    # WA and UA by hand from predictions.csv: per fold, the accuracy and the mean recall over true classes of
    # its clear utterances (ambiguous ones have no label); the run's are the means over folds.
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype=str, keep_default_na=False)
    clear = predictions[predictions["label"] != ""]
    clear = clear.assign(hit=clear["label"] == clear["predicted"])
    assert set(clear["fold"]) == {"S1F", "S2M"}
    assert written["wa"] == pytest.approx(100 * clear.groupby("fold")["hit"].mean().mean())
    recalls = clear.groupby(["fold", "label"])["hit"].mean()
    assert written["ua"] == pytest.approx(100 * recalls.groupby("fold").mean().mean())
    assert [f["speaker"] for f in written["folds"]] == ["S1F", "S2M"]
    assert written["wa_ci"] is None and "js_corrected_to_true" in written  # no interval from 2 folds
    for name in ("results.md", "predictions.csv", "fold-S1F/label_history.npz", "fold-S2M/model.pt"):
        assert (tmp_path / "run" / name).exists(), name
    assert (tmp_path / "run" / "manifest.txt").read_text().strip() == str(Path(tiny_corpus).resolve())
    store = LabelStore.load(tmp_path / "run" / "fold-S1F" / "label_history.npz")
    assert len(store.ids) == 4  # the ambiguous utterances of the two training speakers (S2F, S2M)
    drift = store.drifts()
    assert (drift > 0).all(), "with alpha=0.3 every corrected label differs from the observed one"


def test_alpha_zero_keeps_the_observed_labels(tiny_corpus, tmp_path, quick):
    config = quick_config(quick, **{"loss.alpha": 0.0, "train.stage1_max_epochs": 0, "train.max_epochs": 1})
    parted, fold = fold_of(config, tiny_corpus)
    record = train_fold(config, parted, fold, tmp_path / "fold", progress=False)
    assert record["js_corrected_to_true"] == pytest.approx(record["js_observed_to_true"])


def test_non_finite_loss_stops_with_the_utterance_ids(tiny_corpus, tmp_path, monkeypatch, quick):
    from ser_lib.method import losses

    original = losses.JointLoss.forward

    def poisoned(self, logits, y_soft, ambiguous):
        loss, parts = original(self, logits, y_soft, ambiguous)
        parts["per_sample"] = parts["per_sample"].clone()
        parts["per_sample"][0] = float("nan")
        return loss, parts

    monkeypatch.setattr(losses.JointLoss, "forward", poisoned)
    config = quick_config(quick)
    parted, fold = fold_of(config, tiny_corpus)
    with pytest.raises(TrainingError, match=r"stage1 epoch 0: non-finite loss for utterance\(s\) \['S"):
        train_fold(config, parted, fold, tmp_path / "fold", progress=False)


def test_cli_train_and_predict(tiny_corpus, tmp_path, capsys, quick):
    sets = [arg for key, value in quick.items() for arg in ("--set", f"{key}={value}")]
    assert ser(["train", "--profile", "demo", *sets, "--manifest", str(tiny_corpus), "--fold", "S2F",
                "--out", str(tmp_path / "run")]) == 0
    assert "WA" in capsys.readouterr().out
    wav = tiny_corpus.parent / "wav" / "S2F_0.wav"
    assert ser(["predict", str(wav), "--checkpoint", str(tmp_path / "run" / "fold-S2F" / "model.pt"), "--json"]) == 0
    distribution = json.loads(capsys.readouterr().out)
    assert list(distribution) == ["anger", "happiness", "sadness", "neutral"]
    assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-5)
    assert distribution == pytest.approx(predict_file(wav, tmp_path / "run" / "fold-S2F" / "model.pt"))
    assert ser(["predict", str(wav), "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_fold_speaker_is_a_clear_cli_error(tiny_corpus, tmp_path, capsys):
    assert ser(["loso", "--profile", "demo", "--manifest", str(tiny_corpus), "--folds", "S9X",
                "--out", str(tmp_path / "run")]) == 2
    assert "S9X" in capsys.readouterr().err


def test_frozen_front_end_keeps_its_initial_weights(tiny_corpus, tmp_path, quick):
    from ser_lib.model import TemporalClassifier
    from ser_lib.runtime import seed_all
    from ser_lib.train.algorithm import STAGE1, stage_seed

    config = quick_config(quick, **{"model.freeze_feature_encoder": True})
    parted, fold = fold_of(config, tiny_corpus)
    train_fold(config, parted, fold, tmp_path / "fold", progress=False)
    trained = torch.load(tmp_path / "fold" / "model.pt", weights_only=True)["model"]
    seed_all(stage_seed(config.seed, fold.test_speaker, STAGE1))
    initial = TemporalClassifier(config.model, 4).temporal.encoder.feature_extractor.state_dict()
    prefix = "temporal.encoder.feature_extractor."
    assert initial and all(torch.equal(trained[prefix + k], v) for k, v in initial.items())
    moved = [k for k in trained if k.startswith("temporal.encoder.encoder.")]
    assert moved  # the transformer itself was trained (checked against its init below)
    seed_all(stage_seed(config.seed, fold.test_speaker, STAGE1))
    init_encoder = TemporalClassifier(config.model, 4).temporal.encoder.encoder.state_dict()
    assert not all(torch.equal(trained["temporal.encoder.encoder." + k], v) for k, v in init_encoder.items())


@pytest.mark.parametrize("update", ["step", "running"])
def test_correction_update_rule(tiny_corpus, tmp_path, quick, update):
    """Eq. 6 per sample and epoch, from the label store: y_c = (1-α)·y_s + α·y_g with y_s the
    observed label ("step") or the sample's previous epoch's y_c ("running")."""
    config = quick_config(quick, **{"correction.update": update, "train.stage1_max_epochs": 0,
                                    "train.max_epochs": 3})
    parted, fold = fold_of(config, tiny_corpus)
    train_fold(config, parted, fold, tmp_path / "fold", progress=False)
    store = LabelStore.load(tmp_path / "fold" / "label_history.npz")
    alpha = config.loss.alpha
    for sample_id in store.ids:
        corrected, predicted = store.history(sample_id, "corrected"), store.history(sample_id, "predicted")
        for epoch in range(1, len(store.epochs)):
            source = store.observed(sample_id) if update == "step" else corrected[epoch - 1]
            np.testing.assert_allclose(corrected[epoch], (1 - alpha) * source + alpha * predicted[epoch], atol=1e-6)


@pytest.mark.parametrize("method, ambiguous_in_training", [("clear-hard", 0), ("plurality-hard", 4)])
def test_hard_label_methods_train_on_their_targets(tiny_corpus, tmp_path, quick, method, ambiguous_in_training):
    from ser_lib.method.presets import apply_preset

    config = apply_preset(quick_config(quick, **{"train.stage1_max_epochs": 0, "train.max_epochs": 1}), method)
    parted, fold = fold_of(config, tiny_corpus)
    record = train_fold(config, parted, fold, tmp_path / "fold", progress=False)
    assert record["num_train"]["ambiguous"] == ambiguous_in_training
    store = LabelStore.load(tmp_path / "fold" / "label_history.npz")
    assert len(store.ids) == ambiguous_in_training
    for sample_id in store.ids:  # plurality: one-hot targets, never corrected (α = 0)
        assert sorted(store.observed(sample_id).tolist()) == [0, 0, 0, 1]
        np.testing.assert_allclose(store.last(sample_id), store.observed(sample_id))
