"""Peak memory of one forward of the benchmarked model.

On CUDA, `torch.cuda.max_memory_allocated` over one forward after `reset_peak_memory_stats`:
weights, inputs and activations, not the CUDA context or the allocator's cache.

On CPU, a fresh Python process (a subprocess, after its imports) reads its resident set size
(VmRSS in /proc/self/status), resets its high-water mark (writing 5 to /proc/self/clear_refs,
where Linux allows it), builds the model and inputs, runs one forward and reports VmHWM minus
that VmRSS: weights, inputs, activations, and the library code and one-time buffers the first
forward pages in (about 35 MB of the tiny model's 36 MB at 1 s here). A fresh process, because
this one's high-water mark already holds whatever ran before.

None where there is no /proc (macOS, Windows) and on MPS.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ..config import Config, config_from_dict
from ..runtime import autocast, synchronize
from .workload import build_bench_model, random_segments


def peak_memory_bytes(model: torch.nn.Module, batch: dict, config: Config, length_s: float,
                      device: torch.device, dtype: str) -> int | None:
    """Peak memory of one forward: CUDA's allocator peak, the peak RSS growth of a fresh CPU
    process, or None where neither applies."""
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
    code = "from ser_lib.benchmarking.memory import measure_own_peak_rss; measure_own_peak_rss()"
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
