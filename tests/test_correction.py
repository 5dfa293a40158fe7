"""Real-time label correction (eq. 6)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_lib.method.correction import correct_labels
from ser_lib.errors import ConfigError


@st.composite
def label_batches(draw):
    """(y_soft, y_pred, ambiguous): rows of y_soft and y_pred are distributions (may hold exact 0/1)."""
    b = draw(st.integers(1, 6))
    k = draw(st.integers(2, 6))
    def distributions():
        raw = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 0.25, 0.5]) | st.floats(0.0, 1.0),
                                     min_size=b * k, max_size=b * k))).reshape(b, k)
        raw[:, 0] += 1e-3  # no all-zero rows
        return torch.tensor(raw / raw.sum(1, keepdims=True), dtype=torch.float64)
    y_soft, y_pred = distributions(), distributions()
    ambiguous = torch.tensor(draw(st.lists(st.booleans(), min_size=b, max_size=b)))
    return y_soft, y_pred, ambiguous


@settings(max_examples=60, deadline=None)
@given(label_batches(), st.floats(0.0, 1.0))
def test_correction_properties(batch, alpha):
    y_soft, y_pred, ambiguous = batch
    corrected = correct_labels(y_soft, y_pred, alpha, ambiguous)
    assert corrected.shape == y_soft.shape
    torch.testing.assert_close(corrected.sum(1), torch.ones(len(y_soft), dtype=torch.float64))
    assert torch.equal(corrected[~ambiguous], y_soft[~ambiguous])
    expected = (1 - alpha) * y_soft[ambiguous] + alpha * y_pred[ambiguous]
    torch.testing.assert_close(corrected[ambiguous], expected)


@settings(max_examples=30, deadline=None)
@given(label_batches())
def test_alpha_zero_is_identity_and_alpha_one_is_the_prediction(batch):
    y_soft, y_pred, ambiguous = batch
    assert torch.equal(correct_labels(y_soft, y_pred, 0.0, ambiguous), y_soft)
    full = correct_labels(y_soft, y_pred, 1.0, ambiguous)
    assert torch.equal(full[ambiguous], y_pred[ambiguous])
    assert torch.equal(full[~ambiguous], y_soft[~ambiguous])


def test_no_gradient_reaches_the_prediction_through_the_corrected_label():
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y_pred = torch.softmax(logits, -1)
    y_soft = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.2, 0.2, 0.2, 0.4], [0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    corrected = correct_labels(y_soft, y_pred, 0.5, torch.tensor([True, True, False]))
    assert not corrected.requires_grad
    assert y_pred.requires_grad  # the caller's tensor keeps its graph
    # Soft CE against a constant target has gradient softmax - target; a target that still
    # depended on the logits would add a second term.
    loss = -(corrected * torch.log_softmax(logits, -1)).sum()
    loss.backward()
    torch.testing.assert_close(logits.grad, y_pred.detach() - corrected)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), True, "0.3"])
def test_bad_alpha_is_a_config_error_naming_the_value(alpha):
    with pytest.raises(ConfigError, match="alpha") as info:
        correct_labels(torch.eye(2), torch.eye(2), alpha, torch.tensor([True, False]))
    assert repr(alpha) in str(info.value)


def test_shape_errors_name_the_shapes():
    y = torch.full((3, 4), 0.25)
    with pytest.raises(ValueError, match=r"\(3, 5\).*\(3, 4\)"):
        correct_labels(y, torch.full((3, 5), 0.2), 0.3, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        correct_labels(y, y, 0.3, torch.zeros(3))
    with pytest.raises(ValueError, match=r"\[3\]"):
        correct_labels(y, y, 0.3, torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[batch, classes>=2\]"):
        correct_labels(torch.ones(3), torch.ones(3), 0.3, torch.zeros(3, dtype=torch.bool))
