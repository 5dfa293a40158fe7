"""Jensen-Shannon divergence and L1 distance between label distributions."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_lib.analysis.divergence import js_divergence, l1_distance


@st.composite
def distribution_pairs(draw):
    k = draw(st.integers(2, 6))
    def one():
        raw = np.array(draw(st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0, allow_subnormal=False), min_size=k, max_size=k)))
        raw[0] += 1e-3
        return raw / raw.sum()
    return one(), one()


def naive_js(p, q):
    """½·KL(p‖m) + ½·KL(q‖m) in bits, term by term (0·log 0 = 0). Not scipy's jensenshannon:
    for nearly equal rows its square root of a rounding-negative sum is NaN."""
    m = (p + q) / 2
    kl = lambda a: sum(a_k * np.log2(a_k / m_k) for a_k, m_k in zip(a, m) if a_k > 0)  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)


def test_known_values():
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint support: 1 bit
    assert js_divergence([0.5, 0.5], [0.5, 0.5]) == 0.0
    # JS([1,0], [½,½]) = ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2(2))
    expected = 0.5 * np.log2(4 / 3) + 0.25 * np.log2(2 / 3) + 0.25
    assert js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(expected)
    assert l1_distance([1, 0], [0.5, 0.5]) == pytest.approx(1.0)
    # A subnormal entry must not underflow to a division by zero.
    assert js_divergence([1.0, 0.0], [1.0, 5e-324]) == pytest.approx(0.0, abs=1e-12)
    # Nearly equal rows (scipy's jensenshannon returns NaN here).
    near = np.array([9.99999999e-01, 9.99999999e-10]), np.array([9.99999999e-01, 9.99999998e-10])
    assert js_divergence(*near) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(distribution_pairs())
def test_js_properties(pair):
    p, q = pair
    value = js_divergence(p, q)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(js_divergence(q, p), abs=1e-12)
    assert value == pytest.approx(naive_js(p, q), abs=1e-9)
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


def test_vectorised_over_rows_and_accepts_tensors():
    p = np.array([[1, 0, 0], [0.2, 0.3, 0.5], [0, 0, 1]])
    q = np.array([[0, 1, 0], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    rows = js_divergence(p, q)
    assert rows.shape == (3,)
    np.testing.assert_allclose(rows, [js_divergence(a, b) for a, b in zip(p, q)])
    np.testing.assert_allclose(js_divergence(torch.tensor(p, requires_grad=True), torch.tensor(q)), rows)
    np.testing.assert_allclose(l1_distance(p, q), [2.0, 0.0, 0.4])


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        js_divergence([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        js_divergence([1.5, -0.5], [0.5, 0.5])
