"""Where and how a model runs: device, precision, random state and checkpoint files.

None of this changes what an experiment is (that is `Config` minus its `runtime` section);
it is shared by training, inference and benchmarks.

- `select_device`: CUDA, then MPS, then CPU for "auto".
- `apply_threads`: this process's torch intra-op threads (`runtime.threads`).
- `autocast`: bf16 or fp16 autocast where it pays (`runtime.precision`, see `autocast_dtype`);
  `grad_scaler`: the loss scaling that fp16 needs (a disabled, no-op scaler otherwise).
- `seed_all`, `rng_state`, `set_rng_state`: torch, CUDA and numpy generators. numpy is
  included because transformers draws wav2vec2's SpecAugment masks from its global RNG;
  restoring all three is what makes a resumed run equal an uninterrupted one.
- `save_checkpoint`, `load_checkpoint`: atomic `torch.save`, `weights_only` loading.
- `describe_machine`: the processor and the kernels a number came from; bf16 on a CPU takes a
  different oneDNN path per instruction set, so results differ from one CPU model to another.
- `code_version`: the workbench code a number came from (its git commit, or the package version).
- `matmul_peak_gflops`: this machine's dense matmul throughput, the yardstick of "% of peak";
  `synchronize`: wait for queued GPU work before reading a clock.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .config import RuntimeConfig
from .errors import ConfigError, TrainingError
from .files import atomic_write

CHECKPOINT_VERSION = 1


def select_device(name: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU for "auto"; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={name!r} but CUDA is not available here; use auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"runtime.device={name!r} but MPS is not available here; use auto or cpu")
    return device


def apply_threads(runtime: RuntimeConfig) -> None:
    """Set torch's intra-op threads for this process; 0 keeps torch's default (one per core).

    Runs that share a machine must split its cores: two processes each running one OpenMP thread
    per core oversubscribe it, and spinning threads then slow both far more than twofold.
    """
    if runtime.threads > 0 and torch.get_num_threads() != runtime.threads:
        torch.set_num_threads(runtime.threads)


HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of `runtime.precision` on `device`, None for full precision.

    "auto" is bf16 on CUDA GPUs that run it natively (`cuda_has_native_bf16`) and fp16 on older
    ones (T4, V100), where bf16 is emulated or refused; fp16 trains with loss scaling
    (`grad_scaler`). On CPUs "auto" is bf16 where oneDNN runs it (AVX-512 or AMX x86, bf16 ARM),
    where it measured 1.2x faster per training step; full precision on other CPUs (where bf16
    would be emulated) and on MPS.
    """
    if precision == "fp32":
        return None
    if precision in HALF_DTYPES:
        return HALF_DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def describe_machine(device: torch.device, precision: str = "auto") -> dict:
    """The CPU model and instruction set torch uses, the GPU if any, and the autocast dtype that
    `precision` gives on `device`: what a measured number needs beside it to be compared."""
    model, flags = _cpu_info()
    machine = {"cpu": model, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "cpu_bf16_flags": sorted(flags & BF16_CPU_FLAGS), "torch": torch.__version__, "device": device.type}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    dtype = autocast_dtype(device, precision)
    machine["autocast"] = str(dtype).removeprefix("torch.") if dtype is not None else "fp32"
    return machine


# The instruction-set extensions that decide which bf16 kernels oneDNN runs on an x86 CPU.
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "avx512_fp16", "avx_vnni"}


def _cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and flags from /proc/cpuinfo (Linux); elsewhere the platform's name."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    model, flags = "", set()
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:  # Linux only
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine(), flags


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The workbench code a number came from: `git describe --always --dirty` of the checkout that
    `ser_lib` runs from (a commit, "-dirty" with uncommitted changes), else the installed package's
    version. A sweep writes it into each fold's trial.json and `ser report` lists it: the same
    configuration can give other numbers after a change of code (the book's "noise floor" page)."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass  # no git: the package version below
    try:
        return f"ser-workbench {metadata.version('ser-workbench')} (not a git checkout)"
    except metadata.PackageNotFoundError:
        return "unknown (neither a git checkout nor an installed package)"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def matmul_peak_gflops(dtype: str, device: torch.device, size: int = 2048, seconds: float = 1.0) -> float:
    """This machine's dense matmul throughput in GFLOP/s: [size, size] @ [size, size] in
    `dtype` ("fp32", "bf16" or "fp16"), repeated for about `seconds` after one warm-up product.
    The yardstick of "% of peak" (`ser bench`, `ser pretrain`). Raises (RuntimeError,
    TypeError) where the dtype is not supported."""
    torch_dtype = {"fp32": torch.float32, **HALF_DTYPES}[dtype]
    a = torch.randn(size, size, device=device).to(torch_dtype)
    b = torch.randn(size, size, device=device).to(torch_dtype)
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


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Compute capability 8.0 (Ampere) or later: the first GPUs with bf16 tensor cores."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast(device: torch.device, precision: str = "auto"):
    """Autocast to `autocast_dtype(device, precision)`, or nothing for full precision."""
    dtype = autocast_dtype(device, precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str = "auto") -> torch.amp.GradScaler:
    """A loss scaler, enabled under fp16 autocast only: fp16's narrow exponent range flushes small
    gradients to zero unless the loss is scaled up first. bf16 has fp32's range and needs none.
    A disabled scaler passes everything through, so fp32 and bf16 steps are unchanged."""
    enabled = autocast_dtype(device, precision) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=enabled)


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on `device` (asynchronous copies from pinned memory on CUDA)."""
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


# ----------------------------------------------------------------------------- random state


def seed_all(seed: int) -> None:
    """torch for init and dropout; numpy because transformers draws its time masks from it."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def rng_state() -> dict:
    """torch, CUDA and numpy generator states, as tensors and numbers (weights_only-safe)."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- checkpoint files


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic torch.save: an interrupted write leaves the previous checkpoint intact."""
    with atomic_write(path, "wb") as handle:
        torch.save({"version": CHECKPOINT_VERSION, **state}, handle)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why
        raise TrainingError(f"checkpoint {path} cannot be loaded: {exc}") from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(f"checkpoint {path} has version {state.get('version')}, expected {CHECKPOINT_VERSION}")
    return state
