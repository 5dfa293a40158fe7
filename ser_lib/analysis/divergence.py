"""Distances between label distributions, for measuring label drift.

`js_divergence` uses base-2 logarithms, so it lies in [0, 1]: 0 for identical
distributions, 1 for distributions with disjoint support. Its square root is a metric.
Inputs are numpy arrays or torch tensors (detached, moved to CPU) of shape [..., K];
the divergence is taken along the last axis, row by row.
"""

from __future__ import annotations

import numpy as np


def as_numpy(values) -> np.ndarray:
    """Float64 numpy copy of an array-like or a torch tensor (detached, on CPU)."""
    if hasattr(values, "detach"):  # torch.Tensor without importing torch here
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _check_pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    p, q = as_numpy(p), as_numpy(q)
    if p.ndim == 0 or p.shape != q.shape:
        raise ValueError(f"need two distributions of the same shape [..., K], got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any():
        raise ValueError("distributions must be non-negative")
    return p, q


def js_divergence(p, q) -> np.ndarray | float:
    """Jensen-Shannon divergence in bits, along the last axis.

    JS(p, q) = ½·KL(p‖m) + ½·KL(q‖m) with m = ½(p + q), log base 2, so 0 <= JS <= 1.
    Zero entries contribute 0 (0·log 0 = 0). Rows are used as given (not renormalised).

    Written out rather than taken from `scipy.spatial.distance.jensenshannon`: scipy silently
    renormalises rows, and (scipy 1.17) returns 1 bit instead of 0 for [1, 0] against
    [1, 5e-324], where its m = (p + q) / 2 underflows, and NaN for nearly equal rows, whose
    rounding-negative sum it takes the square root of (tests/test_divergence.py).
    Returns a float for one pair of vectors, else an array of shape p.shape[:-1].
    """
    p, q = _check_pair(p, q)
    total = p + q  # p / m = 2p / (p + q); halving p + q first could underflow to 0
    # Where p > 0 also p + q > 0; elsewhere the ratio is 1, so the term is 0 and nothing divides by 0.
    kl_pm = (p * np.log2(np.divide(2 * p, total, out=np.ones_like(p), where=p > 0))).sum(-1)
    kl_qm = (q * np.log2(np.divide(2 * q, total, out=np.ones_like(q), where=q > 0))).sum(-1)
    js = np.clip(0.5 * (kl_pm + kl_qm), 0.0, None)
    return float(js) if js.ndim == 0 else js


def l1_distance(p, q) -> np.ndarray | float:
    """Sum of absolute differences along the last axis (0 to 2 for distributions)."""
    p, q = _check_pair(p, q)
    distance = np.abs(p - q).sum(-1)
    return float(distance) if distance.ndim == 0 else distance


DISTANCES = {"js": js_divergence, "l1": l1_distance}
