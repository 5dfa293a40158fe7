"""The baselines of the methods registry, each against its rule written out naively:
ProSelfLC's trust, SELC's running labels, the multi-label losses of Li et al., openSMILE + SVM."""

import math

import numpy as np
import pytest
import torch

from ser_lib.config import CorrectionConfig, LossConfig, load_config
from ser_lib.data.labels import load_partition
from ser_lib.errors import ConfigError
from ser_lib.method.correction import correction_alpha, proselflc_trust
from ser_lib.method.label_store import LabelStore
from ser_lib.method.losses import binary_cross_entropy, joint_loss
from ser_lib.method.presets import apply_preset
from ser_lib.train.algorithm import train_fold
from ser_lib.data.folds import loso_folds


def naive_trust(p, epoch, max_epochs, base, transit):
    global_trust = 1.0 / (1.0 + math.exp(-base * (epoch / max_epochs - transit)))
    entropy = -sum(q * math.log(q) for q in p if q > 0)
    return global_trust * (1.0 - entropy / math.log(len(p)))


def test_proselflc_trust_matches_the_formula():
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25], [0.97, 0.01, 0.01, 0.01]])
    for epoch in (0, 3, 6):
        got = proselflc_trust(probs, epoch, 6, base=16.0, transit=0.5)
        want = [naive_trust(row.tolist(), epoch, 6, 16.0, 0.5) for row in probs]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)
    assert float(proselflc_trust(probs[1:2], 6, 6, 16.0, 0.5)) == pytest.approx(0.0, abs=1e-6)  # uniform: no trust


def test_correction_alpha_warm_up_and_schedule():
    probs = torch.full((2, 4), 0.25)
    assert correction_alpha(0.3, CorrectionConfig(start_epoch=2), probs, 1, 6) == 0.0
    assert correction_alpha(0.3, CorrectionConfig(start_epoch=2), probs, 2, 6) == 0.3
    assert correction_alpha(0.3, CorrectionConfig(), probs, None, None) == 0.3
    per_row = correction_alpha(0.3, CorrectionConfig(schedule="proselflc"), probs, 3, 6)
    assert per_row.shape == (2,)


def test_proselflc_targets_in_the_joint_loss():
    torch.manual_seed(0)
    logits = torch.randn(3, 4)
    y = torch.eye(4)[[0, 1, 2]]
    correction = CorrectionConfig(rows="all", schedule="proselflc")
    config = LossConfig(alpha=0.0, clear_terms=("cor",), ambiguous_terms=("cor",), class_weights=False)
    _, parts = joint_loss(logits, y, torch.zeros(3, dtype=torch.bool), config, None, correction, epoch=4, max_epochs=6)
    probs = torch.softmax(logits, -1)
    for i in range(3):
        eps = naive_trust(probs[i].tolist(), 4, 6, 16.0, 0.5)
        np.testing.assert_allclose(parts["corrected"][i].numpy(), ((1 - eps) * y[i] + eps * probs[i]).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_binary_cross_entropy_and_li_loss_terms():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, -0.3, 1.0]])
    soft = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5])
    multi_hot = (soft > 0).float()
    want = []
    for row, labels in zip(logits.tolist(), multi_hot.tolist()):
        total = 0.0
        for k, (z, t) in enumerate(zip(row, labels)):
            p = 1 / (1 + math.exp(-z))
            total -= weights[k].item() * (t * math.log(p) + (1 - t) * math.log(1 - p))
        want.append(total)
    np.testing.assert_allclose(binary_cross_entropy(logits, multi_hot, weights).numpy(), want, rtol=1e-6)

    config = LossConfig(alpha=0.0, beta=0.1, clear_terms=("bce", "bic"), ambiguous_terms=("bce", "bic"))
    loss, parts = joint_loss(logits, soft, torch.tensor([True, False]), config, weights)
    assert float(parts["cor"].abs().sum()) == 0.0 and float(parts["ic"].abs().sum()) == 0.0
    assert float(loss) == pytest.approx(float((parts["bce"] + parts["bic"]).mean()), rel=1e-6)
    assert float(parts["bic"][0]) > 0.0  # p(class 3 unlabeled) + β above p(class 1 labeled)


def quick_fold(tiny_corpus, quick, method, **overrides):
    config = apply_preset(load_config("demo", overrides={**quick, **overrides}), method)
    parted = load_partition(tiny_corpus, config.data)
    config.eval.folds = ("S1F",)
    return config, parted, loso_folds(parted, config.eval)[0]


def test_selc_keeps_a_running_label_for_every_training_row_after_the_warm_up(tiny_corpus, tmp_path, quick):
    """SELC: t ← 0.9·t + 0.1·p on every row from the turning point on; before it, no correction."""
    config, parted, fold = quick_fold(tiny_corpus, quick, "selc", **{"train.stage1_max_epochs": 0,
                                                                     "train.max_epochs": 3})
    record = train_fold(config, parted, fold, tmp_path / "fold", progress=False)
    store = LabelStore.load(tmp_path / "fold" / "label_history.npz")
    total = record["num_train"]["clear"] + record["num_train"]["ambiguous"]
    assert len(store.ids) == total and {store.subset(i) for i in store.ids} == {"clear", "ambiguous"}
    for sample_id in store.ids:
        corrected, predicted = store.history(sample_id, "corrected"), store.history(sample_id, "predicted")
        np.testing.assert_allclose(corrected[0], store.observed(sample_id), atol=1e-6)  # warm-up epoch
        for epoch in range(1, len(store.epochs)):
            np.testing.assert_allclose(corrected[epoch], 0.9 * corrected[epoch - 1] + 0.1 * predicted[epoch], atol=1e-6)


def test_li_interclass_and_proselflc_train(tiny_corpus, tmp_path, quick):
    from ser_lib.analysis import runs

    for method in ("li-interclass", "proselflc"):
        config, parted, fold = quick_fold(tiny_corpus, quick, method, **{"train.max_epochs": 2})
        record = train_fold(config, parted, fold, tmp_path / method, progress=False)
        assert np.isfinite(record["history"][-1]["train_loss"])
        # WA by hand: the share of the test speaker's clear utterances predicted right.
        clear = runs.read_fold_predictions(tmp_path / method).dropna(subset=["label"])
        assert len(clear) > 0 and record["wa"] == pytest.approx(100 * (clear["label"] == clear["predicted"]).mean())


def test_smile_svm_fold_writes_the_usual_outputs(tiny_corpus, tmp_path, quick):
    from ser_lib.analysis import runs
    from ser_lib.train.loso import run_loso

    config = apply_preset(load_config("demo", overrides={**quick, "train.smile_sets": "eGeMAPSv02"}), "smile-svm")
    config.eval.folds = ("S1F", "S2M")
    results = run_loso(config, tiny_corpus, tmp_path / "svm", progress=False)
    # The run's WA by hand: the mean over folds of the share of clear test utterances predicted right.
    folds = [runs.read_fold_predictions(runs.fold_dir(tmp_path / "svm", s)).dropna(subset=["label"])
             for s in ("S1F", "S2M")]
    assert len(results["folds"]) == 2
    assert results["wa"] == pytest.approx(np.mean([100 * (f["label"] == f["predicted"]).mean() for f in folds]))
    predictions = runs.read_fold_predictions(runs.fold_dir(tmp_path / "svm", "S1F"))
    assert len(predictions) == 6  # the test speaker's clear utterances
    record = runs.read_fold_record(runs.fold_dir(tmp_path / "svm", "S1F"))
    assert record["num_features"] == 88 and record["num_train"] == {"clear": 12, "ambiguous": 0}


def test_smile_svm_unknown_feature_set_is_named(tiny_corpus, tmp_path, quick):
    config, parted, fold = quick_fold(tiny_corpus, quick, "smile-svm", **{"train.smile_sets": "NoSuchSet"})
    from ser_lib.method.smile_svm import train_svm_fold

    with pytest.raises(ConfigError, match="NoSuchSet"):
        train_svm_fold(config, parted, fold, tmp_path / "fold", progress=False)
