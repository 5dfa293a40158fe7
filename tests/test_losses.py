"""Losses: soft CE (eq. 7), inter-class difference (eqs. 9-10), joint loss (eq. 11)."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_lib.config import LossConfig
from ser_lib.errors import ConfigError
from ser_lib.method.losses import (
    JointLoss,
    binary_inter_class_difference,
    inter_class_difference,
    inter_class_margins,
    inverse_frequency_weights,
    joint_loss,
    soft_cross_entropy,
)

SETTINGS = settings(max_examples=40, deadline=None)


def _distributions(draw, b, k, allow_one_hot=True):
    """[b, k] float64 rows summing to 1, with exact zeros and ones among the entries."""
    values = st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0.0, 1.0)
    raw = np.array(draw(st.lists(values, min_size=b * k, max_size=b * k))).reshape(b, k)
    raw[raw.sum(1) == 0, 0] = 1.0
    rows = raw / raw.sum(1, keepdims=True)
    if allow_one_hot:
        for i in range(b):
            if draw(st.booleans()):
                rows[i] = np.eye(k)[draw(st.integers(0, k - 1))]
    return torch.tensor(rows)


@st.composite
def probs_and_targets(draw):
    b, k = draw(st.integers(1, 5)), draw(st.integers(2, 6))
    return _distributions(draw, b, k), _distributions(draw, b, k), draw(st.floats(0.0, 1.0))


@st.composite
def joint_batches(draw):
    b, k = draw(st.integers(1, 6)), draw(st.integers(2, 5))
    logits = torch.tensor(draw(st.lists(st.floats(-20, 20), min_size=b * k, max_size=b * k))).reshape(b, k)
    ambiguous = torch.tensor(draw(st.lists(st.booleans(), min_size=b, max_size=b)))
    y_soft = _distributions(draw, b, k, allow_one_hot=False)
    classes = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b)))
    y_soft[~ambiguous] = torch.eye(k, dtype=y_soft.dtype)[classes[~ambiguous]]
    weights = torch.tensor(draw(st.lists(st.floats(0.2, 3.0), min_size=k, max_size=k)))
    return logits.float(), y_soft.float(), ambiguous, weights.float()


def naive_inter_class_difference(p, y, beta, form="eq10"):
    """Eqs. 9-10 written as the triple sum, one sample, one pair of classes at a time; "eq16"
    subtracts y_k·p_k (the margin eq. 16 differentiates) instead of y_j·p_k."""
    out = []
    for i in range(p.shape[0]):
        total = 0.0
        for j in range(p.shape[1]):
            for k in range(p.shape[1]):
                positive = y[i, j] * p[i, k] if form == "eq10" else y[i, k] * p[i, k]
                u = max(0.0, (1 - y[i, j]) * (p[i, j] + beta) - positive)
                total += math.exp(u) - 1
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


# ---------------------------------------------------------------- inter-class difference


@SETTINGS
@given(probs_and_targets())
def test_inter_class_difference_bounds(batch):
    probs, targets, beta = batch
    k = probs.shape[1]
    u = inter_class_margins(probs, targets, beta)
    assert u.shape == (probs.shape[0], k, k)
    assert (u >= 0).all() and (u <= 1 + beta + 1e-12).all()
    loss = inter_class_difference(probs, targets, beta)
    assert loss.shape == (probs.shape[0],)
    assert (loss >= 0).all() and (loss <= k * k * math.expm1(1 + beta) + 1e-9).all()


@SETTINGS
@given(probs_and_targets(), st.sampled_from(["eq10", "eq16"]))
def test_vectorised_inter_class_difference_equals_the_triple_loop(batch, form):
    probs, targets, beta = batch
    expected = naive_inter_class_difference(probs.numpy(), targets.numpy(), beta, form)
    torch.testing.assert_close(inter_class_difference(probs, targets, beta, form), expected)


def test_eq16_compares_p_j_with_p_k_where_eq10_does_not():
    """Label [0.5, 0.5, 0]: class 2 is off-label. As printed, eq. 10 charges p_2 + β whatever
    p_0 and p_1 are; eq. 16's margin is met once y_k·p_k exceeds p_2 + β for the label classes."""
    y = torch.tensor([[0.5, 0.5, 0.0]])
    p = torch.tensor([[0.45, 0.45, 0.10]])
    eq10 = inter_class_margins(p, y, 0.1, "eq10")[0, 2]
    eq16 = inter_class_margins(p, y, 0.1, "eq16")[0, 2]
    torch.testing.assert_close(eq10, torch.full((3,), 0.2))  # p_2 + β for every k
    torch.testing.assert_close(eq16, torch.tensor([0.0, 0.0, 0.2]))  # 0.2 - 0.225 < 0 for k = 0, 1
    with pytest.raises(ConfigError, match="loss.ic_form"):
        inter_class_margins(p, y, 0.1, "eq11")


def test_inter_class_difference_on_a_one_hot_target_is_not_zero():
    # Documented behaviour of eq. 10 as written: j != c contributes exp(p_j + β) - 1.
    probs = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    expected = 2 * 3 * math.expm1(0.1)  # two j != c, each summed over three k
    torch.testing.assert_close(inter_class_difference(probs, target, 0.1), torch.tensor([expected], dtype=torch.float64))


@SETTINGS
@given(probs_and_targets())
def test_inter_class_difference_gradients_are_finite_at_0_and_1(batch):
    probs, targets, beta = batch
    probs = probs.clone().requires_grad_(True)
    inter_class_difference(probs, targets, beta).sum().backward()
    assert torch.isfinite(probs.grad).all()


def test_negative_beta_is_a_config_error():
    with pytest.raises(ConfigError, match="-0.5"):
        inter_class_difference(torch.full((1, 2), 0.5), torch.full((1, 2), 0.5), -0.5)


# ---------------------------------------------------------------- binary inter-class difference


def naive_binary_icd(p, labels, beta):
    out = []
    for i in range(p.shape[0]):
        pos = [k for k in range(p.shape[1]) if labels[i, k] > 0.5]
        neg = [j for j in range(p.shape[1]) if labels[i, j] <= 0.5]
        out.append(sum(math.exp(max(0.0, p[i, j] + beta - p[i, k])) - 1 for j in neg for k in pos))
    return torch.tensor(out, dtype=torch.float32)


@SETTINGS
@given(st.data())
def test_binary_inter_class_difference_equals_the_pair_loop(data):
    b, k = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 6))
    logits = torch.tensor(data.draw(st.lists(st.floats(-8, 8), min_size=b * k, max_size=b * k))).reshape(b, k)
    labels = torch.tensor(data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=b * k, max_size=b * k))).reshape(b, k)
    beta = data.draw(st.floats(0.0, 1.0))
    expected = naive_binary_icd(torch.sigmoid(logits).numpy(), labels.numpy(), beta)
    torch.testing.assert_close(binary_inter_class_difference(logits, labels, beta), expected)


def test_binary_inter_class_difference_special_cases():
    separated = torch.tensor([[12.0, -12.0, 12.0]])  # labels {0, 2} far above non-label 1
    labels = torch.tensor([[1.0, 0.0, 1.0]])
    assert binary_inter_class_difference(separated, labels, 0.1).item() == pytest.approx(0.0, abs=1e-6)
    inverted = torch.tensor([[-12.0, 12.0, -12.0]])
    # two violated pairs, each u ≈ 1 + β
    assert binary_inter_class_difference(inverted, labels, 0.1).item() == pytest.approx(2 * math.expm1(1.1), rel=1e-4)
    for no_pairs in (torch.zeros(1, 3), torch.ones(1, 3)):
        assert binary_inter_class_difference(inverted, no_pairs, 0.1).item() == 0.0


# ---------------------------------------------------------------- soft cross-entropy and class weights


@SETTINGS
@given(st.data())
def test_soft_cross_entropy_matches_torch(data):
    b, k = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 6))
    logits = torch.tensor(data.draw(st.lists(st.floats(-30, 30), min_size=b * k, max_size=b * k))).reshape(b, k)
    targets = _distributions(data.draw, b, k).float()
    torch.testing.assert_close(soft_cross_entropy(logits, targets), F.cross_entropy(logits, targets, reduction="none"))
    weights = torch.tensor(data.draw(st.lists(st.floats(0.1, 5.0), min_size=k, max_size=k)))
    torch.testing.assert_close(
        soft_cross_entropy(logits, targets, weights),
        F.cross_entropy(logits, targets, weight=weights, reduction="none"),
    )


def test_inverse_frequency_weights():
    weights = inverse_frequency_weights(torch.tensor([0, 0, 0, 1, 2, 2]), 3)
    assert weights.mean().item() == pytest.approx(1.0)
    # proportional to 1/3, 1/1, 1/2
    torch.testing.assert_close(weights / weights[0], torch.tensor([1.0, 3.0, 1.5]))
    assert torch.equal(inverse_frequency_weights(torch.tensor([0, 1, 2, 2, 1, 0]), 3), torch.ones(3))
    one_hot = torch.eye(3)[torch.tensor([0, 0, 0, 1, 2, 2])]
    torch.testing.assert_close(inverse_frequency_weights(one_hot, 3), weights)
    torch.testing.assert_close(inverse_frequency_weights(torch.tensor([3.0, 1.0, 2.0]), 3, counts=True), weights)


def test_inverse_frequency_weights_errors():
    with pytest.raises(ConfigError, match=r"\[1\].*no training samples"):
        inverse_frequency_weights(torch.tensor([0, 2, 2]), 3)
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3\]"):
        inverse_frequency_weights(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="integer"):
        inverse_frequency_weights(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="non-negative"):
        inverse_frequency_weights(torch.tensor([1.0, -1.0]), 2, counts=True)


# ---------------------------------------------------------------- joint loss (eq. 11)


@SETTINGS
@given(joint_batches())
def test_ic_norm_ambiguous_averages_the_ic_term_over_n2(batch):
    """Eq. 9: L = mean over the batch of the cross-entropy + (1/N_2) Σ over ambiguous rows of L_Ic."""
    logits, y_soft, ambiguous, weights = batch
    loss, parts = joint_loss(logits, y_soft, ambiguous, LossConfig(ic_norm="ambiguous"), weights)
    n2 = int(ambiguous.sum())
    ic = sum(float(parts["ic"][i]) for i in range(len(ambiguous)) if ambiguous[i])
    expected = sum(float(c) for c in parts["cor"]) / len(ambiguous) + (ic / n2 if n2 else 0.0)
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    batch_loss, _ = joint_loss(logits, y_soft, ambiguous, LossConfig(ic_norm="batch"), weights)
    if n2:  # the ic term weighs B / N_2 times more than with 1/B
        assert float(loss - batch_loss) == pytest.approx(ic / n2 - ic / len(ambiguous), rel=1e-4, abs=1e-5)


@SETTINGS
@given(joint_batches())
def test_joint_loss_with_default_terms(batch):
    logits, y_soft, ambiguous, weights = batch
    config = LossConfig()
    loss, parts = joint_loss(logits, y_soft, ambiguous, config, weights)
    assert (parts["ic"][~ambiguous] == 0).all()
    torch.testing.assert_close(loss, parts["per_sample"].mean())
    torch.testing.assert_close(parts["per_sample"], parts["cor"] + parts["ic"])
    expected_corrected = torch.where(
        ambiguous[:, None], (1 - config.alpha) * y_soft + config.alpha * torch.softmax(logits, -1), y_soft
    )
    torch.testing.assert_close(parts["corrected"], expected_corrected)
    torch.testing.assert_close(parts["cor"], soft_cross_entropy(logits, expected_corrected, weights))
    amb_ic = inter_class_difference(torch.softmax(logits, -1), expected_corrected, config.beta)[ambiguous]
    torch.testing.assert_close(parts["ic"][ambiguous], amb_ic)


@SETTINGS
@given(joint_batches())
def test_all_clear_batch_is_pure_weighted_cross_entropy(batch):
    logits, y_soft, ambiguous, weights = batch
    ambiguous = torch.zeros_like(ambiguous)
    y_soft = torch.eye(y_soft.shape[1])[y_soft.argmax(1)]
    loss, parts = joint_loss(logits, y_soft, ambiguous, LossConfig(), weights)
    per_sample = F.cross_entropy(logits, y_soft.argmax(1), weight=weights, reduction="none")
    torch.testing.assert_close(loss, per_sample.mean())  # mean over samples, not over weights
    assert torch.equal(parts["corrected"], y_soft)


@pytest.mark.parametrize(
    "clear_terms, ambiguous_terms",
    [(("cor",), ("cor",)), (("ic",), ("ic",)), (("cor",), ("ic",)), (("cor", "ic"), ("cor", "ic"))],
)
def test_joint_loss_term_combinations(clear_terms, ambiguous_terms):
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    ambiguous = torch.tensor([True, False, True, False, True, False])
    y_soft = torch.softmax(torch.randn(6, 4), -1)
    y_soft[~ambiguous] = torch.eye(4)[torch.tensor([0, 2, 3])]
    config = LossConfig(clear_terms=clear_terms, ambiguous_terms=ambiguous_terms, class_weights=False)
    loss, parts = joint_loss(logits, y_soft, ambiguous, config)
    corrected = parts["corrected"]
    full = {
        "cor": soft_cross_entropy(logits, corrected),
        "ic": inter_class_difference(torch.softmax(logits, -1), corrected, config.beta),
    }
    expected = torch.zeros(6)
    for subset_mask, terms in ((~ambiguous, clear_terms), (ambiguous, ambiguous_terms)):
        for name in terms:
            expected[subset_mask] += full[name][subset_mask]
    torch.testing.assert_close(parts["per_sample"], expected)
    torch.testing.assert_close(loss, expected.mean())


def test_alpha_zero_is_no_correction_and_ic_target_choice():
    torch.manual_seed(1)
    logits = torch.randn(4, 3)
    y_soft = torch.softmax(torch.randn(4, 3), -1)
    ambiguous = torch.ones(4, dtype=torch.bool)
    base = LossConfig(class_weights=False)
    _, parts = joint_loss(logits, y_soft, ambiguous, dataclasses.replace(base, alpha=0.0))
    assert torch.equal(parts["corrected"], y_soft)
    torch.testing.assert_close(parts["cor"], soft_cross_entropy(logits, y_soft))

    probs = torch.softmax(logits, -1)
    _, observed = joint_loss(logits, y_soft, ambiguous, dataclasses.replace(base, ic_target="observed"))
    _, corrected = joint_loss(logits, y_soft, ambiguous, base)
    torch.testing.assert_close(observed["ic"], inter_class_difference(probs, y_soft, base.beta))
    torch.testing.assert_close(corrected["ic"], inter_class_difference(probs, corrected["corrected"], base.beta))
    assert not torch.allclose(observed["ic"], corrected["ic"])


def test_joint_loss_target_is_detached():
    # Only "cor", unit weights, one ambiguous sample: d loss / d logits = softmax - y_c.
    logits = torch.tensor([[0.3, -1.0, 2.0]], requires_grad=True)
    y_soft = torch.tensor([[0.5, 0.5, 0.0]])
    config = LossConfig(ambiguous_terms=("cor",), class_weights=False)
    loss, parts = joint_loss(logits, y_soft, torch.tensor([True]), config)
    loss.backward()
    torch.testing.assert_close(logits.grad, parts["probs"] - parts["corrected"])


@pytest.mark.parametrize("scale", [1.0, 50.0, 1e4])
def test_joint_loss_gradients_are_finite_for_extreme_logits(scale):
    logits = (torch.tensor([[1.0, -1.0, 0.0, 0.5], [-1.0, 1.0, 1.0, -1.0], [1.0, 0.0, 0.0, 0.0]]) * scale)
    logits.requires_grad_(True)
    y_soft = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25]])
    ambiguous = torch.tensor([False, True, True])
    config = LossConfig(clear_terms=("cor", "ic"))
    loss, parts = joint_loss(logits, y_soft, ambiguous, config, torch.tensor([1.0, 2.0, 0.5, 1.5]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(parts["per_sample"]).all()
    assert torch.isfinite(logits.grad).all()


def test_non_finite_rows_are_reported_per_sample():
    logits = torch.zeros(4, 3)
    logits[2, 1] = float("nan")
    y_soft = torch.full((4, 3), 1 / 3)
    loss, parts = joint_loss(logits, y_soft, torch.ones(4, dtype=torch.bool), LossConfig(class_weights=False))
    assert not torch.isfinite(loss)
    assert (~torch.isfinite(parts["per_sample"])).nonzero().flatten().tolist() == [2]


def test_class_weights_must_match_the_config():
    logits, y_soft, ambiguous = torch.zeros(2, 3), torch.eye(3)[:2], torch.zeros(2, dtype=torch.bool)
    with pytest.raises(ConfigError, match="loss.class_weights is true"):
        joint_loss(logits, y_soft, ambiguous, LossConfig())
    with pytest.raises(ConfigError, match="loss.class_weights is false"):
        joint_loss(logits, y_soft, ambiguous, LossConfig(class_weights=False), torch.ones(3))
    with pytest.raises(ConfigError, match="loss.alpha"):
        joint_loss(logits, y_soft, ambiguous, LossConfig(alpha=2.0), torch.ones(3))


def test_joint_loss_module_matches_the_function():
    torch.manual_seed(2)
    logits, y_soft = torch.randn(5, 4), torch.softmax(torch.randn(5, 4), -1)
    ambiguous = torch.tensor([True, False, True, True, False])
    weights = torch.tensor([0.5, 1.0, 1.5, 1.0])
    module = JointLoss(LossConfig(), weights)
    assert "class_weights" in dict(module.named_buffers())
    loss, parts = module(logits, y_soft, ambiguous)
    expected, _ = joint_loss(logits, y_soft, ambiguous, LossConfig(), weights)
    torch.testing.assert_close(loss, expected)


def test_step_correction_is_a_reweighting_of_the_cross_entropy_gradient():
    """With y_g the step's own detached prediction, the cross-entropy gradient on an ambiguous
    row is (1-α)·(its α = 0 gradient) + α·p_m·(Σ_k w_k p_k − w_m) on logit m (book/method/choices.md, eq. 6);
    without class weights only the first part remains."""
    torch.manual_seed(0)
    logits0 = torch.randn(3, 4, dtype=torch.float64)
    y_soft = torch.softmax(torch.randn(3, 4, dtype=torch.float64), -1)
    ambiguous = torch.ones(3, dtype=torch.bool)
    only_cor = dict(clear_terms=("cor",), ambiguous_terms=("cor",))

    def gradient(alpha, weights):
        logits = logits0.clone().requires_grad_(True)
        config = LossConfig(alpha=alpha, class_weights=weights is not None, **only_cor)
        loss, _ = joint_loss(logits, y_soft, ambiguous, config, weights)
        loss.backward()
        return logits.grad

    alpha = 0.3
    torch.testing.assert_close(gradient(alpha, None), (1 - alpha) * gradient(0.0, None))
    w = torch.tensor([0.5, 1.0, 2.0, 0.5], dtype=torch.float64)
    p = torch.softmax(logits0, -1)
    extra = alpha * p * ((p * w).sum(-1, keepdim=True) - w) / len(p)  # the loss is a mean over rows
    torch.testing.assert_close(gradient(alpha, w), (1 - alpha) * gradient(0.0, w) + extra)


@pytest.mark.parametrize("variant", ["soft", "hard"])
def test_bootstrapping_equals_reeds_loss(variant):
    """Reed et al. (2015), written out: soft L = -Σ (β t + (1-β) q) log q with the gradient
    through q; hard L = -Σ (β t + (1-β) onehot(argmax q)) log q; mean over the batch."""
    from ser_lib.config import CorrectionConfig

    torch.manual_seed(1)
    logits0 = torch.randn(5, 4, dtype=torch.float64)
    t = torch.softmax(torch.randn(5, 4, dtype=torch.float64), -1)
    ambiguous = torch.tensor([True, False, True, False, False])
    beta = 0.95 if variant == "soft" else 0.8
    config = LossConfig(alpha=1 - beta, class_weights=False, clear_terms=("cor",), ambiguous_terms=("cor",))
    correction = CorrectionConfig(rows="all", prediction=variant, gradient=variant == "soft")

    logits = logits0.clone().requires_grad_(True)
    loss, _ = joint_loss(logits, t, ambiguous, config, None, correction)
    loss.backward()

    naive_logits = logits0.clone().requires_grad_(True)
    q = torch.softmax(naive_logits, -1)
    z = q if variant == "soft" else torch.eye(4, dtype=q.dtype)[q.argmax(-1)]
    naive = -((beta * t + (1 - beta) * z) * torch.log(q)).sum(-1).mean()
    naive.backward()
    torch.testing.assert_close(loss, naive)
    torch.testing.assert_close(logits.grad, naive_logits.grad)
