"""% of peak: achieved GFLOP/s (counted FLOPs / time) over this machine's dense matmul
throughput in the same dtype (`runtime.matmul_peak_gflops`)."""

from __future__ import annotations

from typing import Sequence

import torch

from ..runtime import matmul_peak_gflops


def measure_peaks(device: torch.device, dtypes: Sequence[str] = ("fp32", "bf16"), size: int = 2048,
                  seconds: float = 1.0) -> dict[str, dict]:
    """`matmul_peak_gflops` per dtype: {dtype: {"gflops_per_s", "matrix_size", "error"}}, with
    gflops_per_s None and the error's text where the dtype does not work on `device`."""
    peaks = {}
    for dtype in dtypes:
        try:
            peaks[dtype] = {"gflops_per_s": matmul_peak_gflops(dtype, device, size, seconds),
                            "matrix_size": size, "error": None}
        except (RuntimeError, TypeError) as exc:
            peaks[dtype] = {"gflops_per_s": None, "matrix_size": size, "error": f"{type(exc).__name__}: {exc}"}
    return peaks


def percent_of_peak(gflops_per_s: float, peaks: dict, dtype: str) -> float | None:
    """`gflops_per_s` as a percentage of the matmul peak of `dtype`; None where that is unknown."""
    peak = peaks.get(dtype, {}).get("gflops_per_s")
    return 100 * gflops_per_s / peak if peak else None
