"""Inference cost like the paper's Table VI, and training throughput (`ser bench`).

What is measured, and how:

- **MACs and FLOPs** of one forward of the full model at batch 1, counted by
  `torch.utils.flop_counter.FlopCounterMode`. It counts matmuls and convolutions only, at 2
  FLOPs per multiply-accumulate; elementwise ops, normalisation and softmax are left out. Its
  total is reported as FLOPs and half of it as MACs.
- **The paper's "FLOPs" are most likely MACs**: Table VI gives 6.95 G "FLOPs" at 1 s, and
  wav2vec2-base alone measures 6.91 GMACs (13.8 GFLOPs) at 1 s here; the full model with it,
  6.93 GMACs at 1 s and 13.61 GMACs at 1.94 s, beside Table VI's numbers at both lengths. The
  paper's numbers (all four lengths) are read from `paper_numbers.csv` (`paper_table_vi`).
- **Eager attention**: the model is built with transformers' "eager" attention, whose
  explicit matmuls the counter sees; fused SDPA kernels (the default) go uncounted on CPU.
  Latency and training are timed on that same model, so counts and times describe one
  computation.
- **Latency**: batch 1 under `torch.inference_mode()`, `warmup` untimed forwards, then `runs`
  forwards timed one by one (CUDA synchronised around each); mean and sample std in ms. The
  input is a random waveform of the given length and its log-mel filterbank, computed before
  timing: training and `ser predict` compute filterbanks outside the model too.
  RTF = latency / input length.
- **Peak memory**: on CUDA, `torch.cuda.max_memory_allocated` over one forward after
  `reset_peak_memory_stats`: weights, inputs and activations, not the CUDA context or the
  allocator's cache. On CPU, a fresh Python process (a subprocess, after its imports) reads
  its resident set size (VmRSS in /proc/self/status), resets its high-water mark (writing 5
  to /proc/self/clear_refs, where Linux allows it), builds the model and inputs, runs one
  forward and reports VmHWM minus that VmRSS: weights, inputs, activations, and the library
  code and one-time buffers the first forward pages in (about 35 MB of the tiny model's 36 MB
  at 1 s here). None where there
  is no /proc (macOS, Windows) and on MPS.
- **% of peak**: achieved GFLOP/s (counted FLOPs / time) over this machine's dense matmul
  throughput in the same dtype (`matmul_peak_gflops`).
- **Training throughput**: segments per second of one stage-1 step (`TemporalClassifier`,
  clear rows) and one stage-2 step (`SERModel`, the joint loss, half the rows ambiguous) at
  `train.batch_size`, made by `train.stage`'s own `forward_loss` and `optimizer_step` with the
  run's `runtime.precision` (and its loss scaler under fp16) and, with
  `model.freeze_feature_encoder`, the front end's output precomputed as training does; warm-up
  steps excluded. The FLOPs of the timed steps are counted by replaying them under the counter
  with the same seeds (layer drop and time masking make steps differ), backward included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from ..config import Config, config_from_dict
from ..data.features import fbank, num_frames
from ..data.inputs import SegmentInputs, model_batch
from ..errors import ConfigError
from ..method.losses import JointLoss
from ..model import SERModel, TemporalClassifier
from ..model.encoder import build_encoder
from ..runtime import autocast, autocast_dtype, grad_scaler, seed_all, to_device
from .paper_numbers import paper_table

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DTYPE_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}  # of runtime.autocast_dtype


def paper_table_vi() -> dict[float, dict[str, float]]:
    """Table VI of the paper from `paper_numbers.csv`: {input length in s: {column: value}},
    its columns "FLOPs" (G), "Latency" and "Latency ±" (ms), "RTF" and "Peak Mem" (GB)."""
    table = paper_table("VI")
    return {float(row.removesuffix(" s")): dict(zip(cells["column"], cells["value"]))
            for row, cells in table.groupby("row", sort=False)}


PAPER_TABLE_VI = paper_table_vi()
PAPER_LENGTHS = tuple(PAPER_TABLE_VI)  # the paper's input lengths, in its order
DEFAULT_LENGTHS = PAPER_LENGTHS + (3.0, 7.0)
PAPER_SETUP = "RTX 3090, batch 1, full model, 100 runs"  # Table VI's caption
ROW_KEYS = ("encoder", "length_s", "macs", "flops", "latency_ms", "latency_std_ms", "rtf", "peak_mem_bytes",
            "device", "dtype", "gflops_per_s", "percent_of_peak")
# Stage 2 trains on clear and ambiguous segments together; half of its benchmark rows are ambiguous.
AMBIGUOUS_FRACTION = 0.5


# ----------------------------------------------------------------------------- inputs and models


def with_encoder(config: Config, encoder: str) -> Config:
    """A copy of `config` whose `model.encoder` is `encoder`."""
    if not isinstance(encoder, str) or not encoder.strip():
        raise ConfigError(f"bench encoder must be tiny, base, a Hugging Face name or a folder, got {encoder!r}")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, encoder=encoder.strip())).validate()


def build_bench_model(config: Config, stage1: bool = False) -> torch.nn.Module:
    """The benchmarked model, seeded by `config.seed`, with eager attention, in eval mode:
    `SERModel` of `model.variant`, or the stage-1 `TemporalClassifier` if `stage1`."""
    torch.manual_seed(config.seed)
    num_classes = len(config.data.classes)
    with warnings.catch_warnings():
        # Group-norm encoders (base) warn that padding changes their output; batches here have none.
        warnings.filterwarnings("ignore", message="encoder .* uses feat_extract_norm")
        has_encoder = stage1 or config.model.variant != "spatial"
        encoder = build_encoder(config.model, attn_implementation="eager") if has_encoder else None
        model_class = TemporalClassifier if stage1 else SERModel
        return model_class(config.model, num_classes, encoder=encoder).eval()


def random_segments(length_s: float, config: Config, batch_size: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """A model batch of `batch_size` random waveforms of `length_s` seconds and their filterbanks."""
    rate = config.data.sample_rate
    samples = round(length_s * rate)
    frames = num_frames(samples, config.features, rate)
    if frames == 0:
        raise ConfigError(f"bench length {length_s} s is shorter than one filterbank window "
                          f"({config.features.frame_length_ms} ms)")
    generator = torch.Generator().manual_seed(seed)
    waveforms = 0.1 * torch.randn(batch_size, samples, generator=generator)
    return model_batch([SegmentInputs(w, fbank(w, config.features, rate), samples, frames) for w in waveforms])


def training_batch(config: Config, length_s: float, ambiguous_fraction: float, seed: int = 0) -> dict:
    """`random_segments` at `train.batch_size` with labels: one-hot clear rows, and the first
    `ambiguous_fraction` of the rows ambiguous with random soft labels."""
    size, num_classes = config.train.batch_size, len(config.data.classes)
    batch = random_segments(length_s, config, size, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    clear = F.one_hot(torch.randint(num_classes, (size,), generator=generator), num_classes).float()
    soft = torch.softmax(torch.randn(size, num_classes, generator=generator), dim=-1)
    ambiguous = torch.arange(size) < round(ambiguous_fraction * size)
    batch["y_soft"] = torch.where(ambiguous[:, None], soft, clear)
    batch["ambiguous"] = ambiguous
    return batch


# ----------------------------------------------------------------------------- measurements


def count_flops(model: torch.nn.Module, batch: dict) -> tuple[int, int]:
    """(MACs, FLOPs) of one forward of `model` on `batch`, counted by FlopCounterMode.

    The counter counts matmuls and convolutions at 2 FLOPs per multiply-accumulate; its total
    is the FLOPs and half of it the MACs. Counted under no_grad, not inference_mode: under
    inference_mode the counter breaks wav2vec2's weight-normed positional convolution.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(batch)
    flops = int(counter.get_total_flops())
    return flops // 2, flops


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


def peak_memory_bytes(model: torch.nn.Module, batch: dict, config: Config, length_s: float,
                      device: torch.device, dtype: str) -> int | None:
    """Peak memory of one forward (see the module docstring): CUDA's allocator peak, the
    peak RSS growth of a fresh CPU process, or None where neither applies."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode(), autocast(device, dtype):
            model(batch)
        synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    if device.type == "cpu" and Path("/proc/self/status").exists():
        return _fresh_process_peak_rss(config, length_s, dtype)
    return None


def _fresh_process_peak_rss(config: Config, length_s: float, dtype: str) -> int:
    # A subprocess rather than multiprocessing: it needs no `if __name__ == "__main__"` guard
    # in the caller's script. The request goes in on stdin, the bytes come back on stdout.
    request = json.dumps({"config": config.to_dict(), "length_s": length_s, "dtype": dtype})
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    code = "from ser_lib.analysis.efficiency import measure_own_peak_rss; measure_own_peak_rss()"
    done = subprocess.run([sys.executable, "-c", code], input=request, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise RuntimeError(f"the peak-memory process for {length_s} s failed: {last_line}")
    return int(done.stdout.split()[-1])


def measure_own_peak_rss() -> None:
    """The fresh process's side: reads {"config", "length_s", "dtype"} from stdin and prints
    VmHWM after building the model and running one forward, minus VmRSS before, in bytes."""
    request = json.loads(sys.stdin.read())
    config = config_from_dict(request["config"], source="bench")
    length_s, dtype = request["length_s"], request["dtype"]
    baseline_kb = _proc_status_kb("VmRSS")
    with contextlib.suppress(OSError):  # resets VmHWM to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    model = build_bench_model(config)
    batch = random_segments(length_s, config)
    with torch.inference_mode(), autocast(torch.device("cpu"), dtype):
        model(batch)
    print(1024 * (_proc_status_kb("VmHWM") - baseline_kb))


def _proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def matmul_peak_gflops(dtype: str, device: torch.device, size: int = 2048, seconds: float = 1.0) -> float:
    """This machine's dense matmul throughput in GFLOP/s: [size, size] @ [size, size] in
    `dtype` ("fp32" or "bf16"), repeated for about `seconds` after one warm-up product.
    Raises (RuntimeError, TypeError) where the dtype is not supported."""
    a = torch.randn(size, size, device=device).to(DTYPES[dtype])
    b = torch.randn(size, size, device=device).to(DTYPES[dtype])
    out = torch.empty_like(a)
    flops_per_product = 2 * size**3
    start = time.perf_counter()
    torch.mm(a, b, out=out)
    synchronize(device)
    warmup_seconds = time.perf_counter() - start
    if warmup_seconds >= seconds:  # a slow emulated dtype: one product is measurement enough
        return flops_per_product / warmup_seconds / 1e9
    products, chunk, elapsed = 0, 1, 0.0
    start = time.perf_counter()
    while elapsed < seconds:
        # Synchronise once per chunk, not per product: small GPU kernels outrun a sync.
        for _ in range(chunk):
            torch.mm(a, b, out=out)
        synchronize(device)
        products += chunk
        elapsed = time.perf_counter() - start
        # Double the chunk, but not past the time left.
        chunk = max(1, min(2 * chunk, int((seconds - elapsed) / (elapsed / products))))
    return flops_per_product * products / elapsed / 1e9


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


# ----------------------------------------------------------------------------- the benchmarks


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
        raise ConfigError(f"bench dtypes must be a non-empty subset of {tuple(DTYPES)}, got {tuple(dtypes)!r}")


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


def check_training_args(length_s: float, steps: int, warmup: int) -> None:
    """ConfigError naming the bad value, unless length_s > 0, steps >= 1 and warmup >= 0."""
    if not math.isfinite(length_s) or length_s <= 0:
        raise ConfigError(f"bench training length must be positive seconds, got {length_s!r}")
    if steps < 1:
        raise ConfigError(f"bench training steps must be at least 1, got {steps}")
    if warmup < 0:
        raise ConfigError(f"bench training warm-up steps must be >= 0, got {warmup}")


def measure_training_throughput(config: Config, encoder: str, device: torch.device | str, length_s: float = 4.0,
                                steps: int = 5, warmup: int = 1, peaks: dict | None = None) -> dict:
    """Segments per second and GFLOP/s of stage-1 and stage-2 training steps (module docstring).

    Returns {"length_s", "batch_size", "steps", "warmup", "device", "dtype", "stage1", "stage2"};
    each stage holds segments_per_s, step_ms, flops_per_step, gflops_per_s and percent_of_peak.
    stage1 is None for model.variant=spatial, which has no stage 1.
    """
    check_training_args(length_s, steps, warmup)
    device = torch.device(device)
    config = with_encoder(config, encoder)
    peaks = measure_peaks(device) if peaks is None else peaks
    dtype = DTYPE_NAMES[autocast_dtype(device, config.runtime.precision)]  # as training runs
    results = {"length_s": float(length_s), "batch_size": config.train.batch_size, "steps": steps,
               "warmup": warmup, "device": str(device), "dtype": dtype}
    stages = {"stage1": (True, 0.0), "stage2": (False, AMBIGUOUS_FRACTION)}
    for name, (stage1, ambiguous_fraction) in stages.items():
        if stage1 and config.model.variant == "spatial":
            results[name] = None
            continue
        model = build_bench_model(config, stage1=stage1).to(device)
        batch = to_device(training_batch(config, length_s, ambiguous_fraction), device)
        if config.model.freeze_feature_encoder:  # as training does: the front end's output is precomputed
            model.temporal.encoder.freeze_feature_encoder()
            batch["front_end"] = pad_sequence(model.temporal.front_end(list(batch["waveform"])), batch_first=True).to(device)
        seconds, flops = _time_training_steps(model, batch, config, device, steps, warmup)
        gflops_per_s = flops / seconds / 1e9
        results[name] = {"segments_per_s": steps * config.train.batch_size / seconds,
                         "step_ms": 1000 * seconds / steps, "flops_per_step": flops // steps,
                         "gflops_per_s": gflops_per_s, "percent_of_peak": percent_of_peak(gflops_per_s, peaks, dtype)}
    return results


def _time_training_steps(model: torch.nn.Module, batch: dict, config: Config, device: torch.device,
                         steps: int, warmup: int) -> tuple[float, int]:
    """(seconds, FLOPs) of `steps` training steps after `warmup` untimed ones. The FLOPs come
    from replaying the timed steps under the counter with the same seeds."""
    # Imported here: the peak-memory process imports this module and needs no training stack.
    from ..train.stage import forward_loss, make_optimizer, optimizer_step

    model.train()
    weights = torch.ones(len(config.data.classes)) if config.loss.class_weights else None
    loss_fn = JointLoss(config.loss, weights, config.correction).to(device)
    optimizer = make_optimizer(model, config.train)
    scaler = grad_scaler(device, config.runtime.precision)

    def train_steps(count: int) -> None:
        for _ in range(count):
            loss, _ = forward_loss(model, batch, loss_fn, device, config.runtime.precision)
            optimizer_step(loss, model, optimizer, config.train.grad_clip, scaler)

    train_steps(warmup)
    seed_all(config.seed)
    synchronize(device)
    start = time.perf_counter()
    train_steps(steps)
    synchronize(device)
    seconds = time.perf_counter() - start
    seed_all(config.seed)
    counter = FlopCounterMode(display=False)
    with counter:
        train_steps(steps)
    return seconds, int(counter.get_total_flops())


# ----------------------------------------------------------------------------- helpers and tables


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _number(value, digits: int, scale: float = 1.0) -> str:
    return "—" if value is None else f"{value / scale:.{digits}f}"


def format_markdown(rows: Sequence[dict], peaks: dict) -> str:
    """Our rows and the paper's Table VI rows (at their lengths, beside ours) as one Markdown
    table, with the method notes and the measured matmul peaks."""
    header = ("| source | device | dtype | length (s) | MACs (G) | FLOPs (G) | latency (ms) | RTF "
              "| peak memory (GB) | GFLOP/s | % of peak |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for length in sorted({row["length_s"] for row in rows} | set(PAPER_LENGTHS)):
        for row in (r for r in rows if r["length_s"] == length):
            lines.append(
                f"| ours, encoder {row['encoder']} | {row['device']} | {row['dtype']} | {length:.2f} "
                f"| {_number(row['macs'], 2, 1e9)} | {_number(row['flops'], 2, 1e9)} "
                f"| {row['latency_ms']:.2f} ± {row['latency_std_ms']:.2f} | {row['rtf']:.4f} "
                f"| {_number(row['peak_mem_bytes'], 3, 1e9)} | {_number(row['gflops_per_s'], 1)} "
                f"| {_number(row['percent_of_peak'], 1)} |")
        if length in PAPER_TABLE_VI:  # as the paper prints them: its RTF has 3 decimals
            paper = PAPER_TABLE_VI[length]
            lines.append(f"| paper Table VI | RTX 3090 | — | {length:.2f} | {paper['FLOPs']:.2f}* | — "
                         f"| {paper['Latency']:.2f} ± {paper['Latency ±']:.2f} | {paper['RTF']:.3f} "
                         f"| {paper['Peak Mem']:.2f} | — | — |")
    notes = [
        "",
        "FlopCounterMode counts matmuls and convolutions (eager attention included): FLOPs = 2 × MACs.",
        _macs_footnote(),
        f"Paper setup: {PAPER_SETUP}; its numbers as Table VI prints them.",
        "Latency: batch 1, mean ± std of the timed forwards after warm-up; the filterbank is computed "
        "before timing. RTF = latency / length.",
        "Peak memory: CUDA allocator peak of one forward; on CPU the peak RSS growth of a fresh process "
        "that builds the model and runs one forward (weights, inputs, activations, library code it pages in).",
        "% of peak: counted FLOPs / latency over the matmul peak below, same dtype.",
        "",
        format_peaks(peaks),
    ]
    return "\n".join(lines + notes)


def _macs_footnote() -> str:
    """Why the paper's "FLOPs" sit in the MACs column, from its numbers at the two lengths measured
    here with wav2vec2-base (figures/table6-bench_report.md)."""
    at_1, at_194 = PAPER_TABLE_VI[1.0]["FLOPs"], PAPER_TABLE_VI[1.94]["FLOPs"]
    return (f"\\* The paper's \"FLOPs\" are most likely MACs and are shown as such: at 1 s it reports {at_1:.2f} G, "
            f"where wav2vec2-base alone has 6.91 GMACs and the full model with it 6.93; at 1.94 s it reports "
            f"{at_194:.2f} G, where the full model has 13.61 GMACs (27.21 GFLOPs).")


def format_peaks(peaks: dict) -> str:
    """One line: the measured dense matmul throughput per dtype, or why it is missing."""
    parts = []
    for dtype, peak in peaks.items():
        if peak["gflops_per_s"] is None:
            parts.append(f"{dtype} unsupported ({peak['error']})")
        else:
            parts.append(f"{dtype} {peak['gflops_per_s']:.1f} GFLOP/s")
    size = next(iter(peaks.values()))["matrix_size"] if peaks else 0
    return f"Matmul peak ({size}×{size} @ {size}×{size}, this machine): " + ", ".join(parts)


def format_training_markdown(train: dict) -> str:
    """The training throughput of `measure_training_throughput` as a Markdown table."""
    lines = ["| stage | device | dtype | batch | length (s) | segments/s | step (ms) | GFLOP per step "
             "| GFLOP/s | % of peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, label in (("stage1", "1: temporal branch, clear rows"), ("stage2", "2: full model, joint loss")):
        stage = train[name]
        if stage is None:
            continue
        lines.append(f"| {label} | {train['device']} | {train['dtype']} | {train['batch_size']} "
                     f"| {train['length_s']:.2f} | {stage['segments_per_s']:.1f} | {stage['step_ms']:.1f} "
                     f"| {stage['flops_per_step'] / 1e9:.1f} | {stage['gflops_per_s']:.1f} "
                     f"| {_number(stage['percent_of_peak'], 1)} |")
    lines += ["", f"{train['steps']} timed steps after {train['warmup']} warm-up step(s); FLOPs counted on a "
                  "replay of the timed steps (forward and backward, eager attention)."]
    return "\n".join(lines)
