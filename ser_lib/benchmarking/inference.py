"""Inference cost like the paper's Table VI: one row per input length and dtype.

Each row holds the MACs and FLOPs of one forward at batch 1 (`flops`), its latency, the
real-time factor, its peak memory (`memory`) and the achieved GFLOP/s as a share of the
machine's matmul peak (`peaks`).

Latency: batch 1 under `torch.inference_mode()`, `warmup` untimed forwards, then `runs`
forwards timed one by one (CUDA synchronised around each); mean and sample std in ms.
RTF = latency / input length.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..config import Config
from ..errors import ConfigError
from ..runtime import autocast, synchronize, to_device
from .flops import count_flops
from .memory import peak_memory_bytes
from .peaks import measure_peaks, percent_of_peak
from .table_vi import PAPER_LENGTHS
from .workload import build_bench_model, random_segments, with_encoder

DTYPES = ("fp32", "bf16")  # full precision, and bf16 autocast
DEFAULT_LENGTHS = PAPER_LENGTHS + (3.0, 7.0)  # the paper's, then up to the longest segment (7 s, §V-C)
ROW_KEYS = ("encoder", "length_s", "macs", "flops", "latency_ms", "latency_std_ms", "rtf", "peak_mem_bytes",
            "device", "dtype", "gflops_per_s", "percent_of_peak")


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    """fp32 and bf16 autocast on CUDA; fp32 elsewhere."""
    return ("fp32", "bf16") if device.type == "cuda" else ("fp32",)


def check_bench_args(lengths: Sequence[float], runs: int, warmup: int, dtypes: Sequence[str]) -> None:
    """ConfigError naming the bad value, unless lengths > 0, runs >= 1, warmup >= 0 and dtypes known."""
    if not lengths:
        raise ConfigError("bench needs at least one input length")
    for length in lengths:
        if not isinstance(length, (int, float)) or not math.isfinite(length) or length <= 0:
            raise ConfigError(f"bench lengths must be positive seconds, got {length!r}")
    if runs < 1:
        raise ConfigError(f"bench runs must be at least 1, got {runs}")
    if warmup < 0:
        raise ConfigError(f"bench warm-up runs must be >= 0, got {warmup}")
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown or not dtypes:
        raise ConfigError(f"bench dtypes must be a non-empty subset of {DTYPES}, got {tuple(dtypes)!r}")


def measure_latency(model: torch.nn.Module, batch: dict, runs: int, warmup: int, device: torch.device,
                    dtype: str = "fp32") -> tuple[float, float]:
    """(mean, sample std) in ms of `runs` forwards of `batch` after `warmup` untimed ones,
    under inference_mode and, for "bf16", autocast; each forward is timed on its own."""
    times = []
    with torch.inference_mode(), autocast(device, dtype):
        for _ in range(warmup):
            model(batch)
        for _ in range(runs):
            synchronize(device)
            start = time.perf_counter()
            model(batch)
            synchronize(device)
            times.append(1000 * (time.perf_counter() - start))
    return statistics.mean(times), statistics.stdev(times) if runs > 1 else 0.0


def run_benchmark(config: Config, encoder: str, lengths: Sequence[float], runs: int, device: torch.device | str,
                  dtypes: Sequence[str] | None = None, warmup: int = 10, peaks: dict | None = None,
                  progress: bool = False) -> list[dict]:
    """Table VI for the full model with `encoder`: one row (`ROW_KEYS`) per length and dtype.

    `dtypes` defaults to `default_dtypes(device)`; "bf16" runs under autocast. `peaks` (from
    `measure_peaks`, measured if None) gives percent_of_peak. FLOPs are counted once per
    length: autocast changes the arithmetic's precision, not its amount.
    """
    device = torch.device(device)
    dtypes = tuple(dtypes or default_dtypes(device))
    check_bench_args(lengths, runs, warmup, dtypes)
    config = with_encoder(config, encoder)
    peaks = measure_peaks(device) if peaks is None else peaks
    model = build_bench_model(config).to(device)
    rows = []
    for length_s in tqdm(lengths, desc=f"bench {config.model.encoder}", unit="length", disable=not progress):
        batch = to_device(random_segments(length_s, config), device)
        macs, flops = count_flops(model, batch)
        for dtype in dtypes:
            latency_ms, latency_std_ms = measure_latency(model, batch, runs, warmup, device, dtype)
            gflops_per_s = flops / (latency_ms / 1000) / 1e9
            rows.append({
                "encoder": config.model.encoder, "length_s": float(length_s), "macs": macs, "flops": flops,
                "latency_ms": latency_ms, "latency_std_ms": latency_std_ms, "rtf": latency_ms / 1000 / length_s,
                "peak_mem_bytes": peak_memory_bytes(model, batch, config, length_s, device, dtype),
                "device": str(device), "dtype": dtype, "gflops_per_s": gflops_per_s,
                "percent_of_peak": percent_of_peak(gflops_per_s, peaks, dtype),
            })
    return rows
