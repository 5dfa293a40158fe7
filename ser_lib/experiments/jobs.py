"""Worker jobs: a sweep's pending folds grouped so that one worker process trains several.

A Ray worker pays a fixed cost before its first fold (the process, `import torch`, transformers,
Ray's own set-up): about a third of a 20-40 s tiny-encoder fold. A *worker job* is one Ray trial
that trains up to `trials_per_worker` folds one after the other in one fresh process, then exits:
the fixed cost is paid once per job, and the memory a worker can accumulate is bounded by what
`trials_per_worker` folds leave behind (a reused Ray actor, by contrast, lives for the whole
sweep; its memory grew from 4.7 to 5.8 GB over a few trials).

`group_jobs` puts together only the folds of one fold name on one corpus manifest (the same test
speaker, the same partition), in the grid's run order: runs that share a stage 1
(`train/stage1_store.py`) are adjacent in that order (seed-major), so the first run of a job
trains it and the others load it in the same process. Each fold keeps its own folder,
checkpoints, `fold_result.json` and `trial.json`, so resuming, reporting and the fold's results
are those of a fold trained alone.

Measured on a 2-core machine shared with two other people's work (load 2.6-4.5 throughout, so
wall times are noisy): `ser sweep --grid G --manifest data/synth-small/manifest.csv --out DIR
--trials-per-worker N`, G = demo profile, `model.encoder: tiny-pretrained`, methods paper,
soft-static, clear-hard, paper-running, seed 0, `folds: 2`, `threads: 1` (8 folds of 25-115 s),
each run from a copy of one warm feature cache without stage-1 entries, runs in the order
N=4, N=1, N=1, N=4. Wall: N=1 306 s and 482 s, N=4 437 s and 426 s: the fold training time
itself moved up to 2x between runs with the load, more than the effect. What the workers spent
outside their folds (2 slots x wall - the sum of the folds' `trial_seconds`): N=1 223 and
278 slot-seconds, N=4 159 and 134, i.e. 11-24 s saved per worker start avoided (6 of 8 here).
Every fold's predictions.csv was byte-identical across the four runs. Peak RSS by a fold's
position in its job (N=4; its two jobs, Ses01F/Ses01M): 2234/2342, 2769/2611, 2769/2782,
2919/2927 MiB; a fresh worker's fold peaked at 1971-2491 MiB. In one process training eight
such folds in a row (1 epoch a stage), the peak rose 1569, 1853, 2045, 2304, 2435, 2435, 2435,
2492 MiB and the RSS between folds stayed at 1.03-1.08 GB (after `malloc_trim`): the growth is
a one-time ~0.5 GB of what the first fold loads plus allocator slack, not a leak, and it
levels off. Hence the default of 4: most of the start-up saved (3 of 4 starts), a worker's peak
about 0.5 GB above a fresh one's, and jobs short enough to balance the end of a sweep.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Sequence

from ..analysis import runs
from ..errors import ConfigError

# Folds one worker process trains before it exits, unless the grid (`trials_per_worker:`) or
# `ser sweep --trials-per-worker` says otherwise; 1 is one process per fold. 4: see the module
# docstring's measurement.
DEFAULT_TRIALS_PER_WORKER = 4


def check_trials_per_worker(value: Any, source: str) -> int:
    """`value` as a number of folds per worker, or a ConfigError naming `source`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{source}: trials_per_worker must be a whole number >= 1 (1: a fresh process per fold), "
                          f"got {value!r}")
    return value


def pending_trials(out: Path, run_names: Sequence[str], speakers: Sequence[str]) -> tuple[list[tuple[str, str]], int]:
    """The (run, fold) pairs without `fold_result.json` under the sweep folder `out`, run-major in
    the grid's order, and how many pairs are finished."""
    pending, finished = [], 0
    for run in run_names:
        for speaker in speakers:
            if runs.is_finished(runs.fold_dir(Path(out) / run, speaker)):
                finished += 1
            else:
                pending.append((run, speaker))
    return pending, finished


def job_size(pending: int, per_worker: int, slots: int | None) -> int:
    """Folds per job: `per_worker`, or fewer when there are fewer than `per_worker` pending folds
    for each of the `slots` jobs that can run at once (so that a short sweep still fills the
    machine instead of training its folds in a few long jobs)."""
    if slots is None or slots < 1 or pending == 0:
        return per_worker
    return max(1, min(per_worker, math.ceil(pending / slots)))


def group_jobs(trials: Sequence[dict], per_worker: int, slots: int | None = None) -> list[list[int]]:
    """Worker jobs over `trials` (dicts with "run", "speaker" and "manifest", pending only, in the
    grid's run order) as lists of indices into `trials`.

    A job holds trials of one (manifest, speaker) only, at most `job_size(len(trials), per_worker,
    slots)` of them, in their order in `trials`; a fold's trials are split into jobs of equal size
    (within one). Jobs come in the order of their first trial, so the sweep still starts with the
    first seeds and draws of the grid. The same input gives the same jobs."""
    per_worker = check_trials_per_worker(per_worker, "trials per worker")
    size = job_size(len(trials), per_worker, slots)
    by_fold: dict[tuple[str, str], list[int]] = {}
    for index, trial in enumerate(trials):
        by_fold.setdefault((str(trial["manifest"]), str(trial["speaker"])), []).append(index)
    jobs = []
    for indices in by_fold.values():
        count = math.ceil(len(indices) / size)
        base, extra = divmod(len(indices), count)
        start = 0
        for chunk in range(count):
            end = start + base + (chunk < extra)
            jobs.append(indices[start:end])
            start = end
    return sorted(jobs, key=lambda job: job[0])


_PEAK_SEEN = [0]  # the largest peak this process has reported, so its reports never go down


def worker_memory() -> dict[str, int | None]:
    """This process's resident memory now and its peak so far, in bytes (`ru_maxrss` is KiB on
    Linux, bytes on macOS); the peak is None where `resource` is missing (Windows). Linux updates
    the high-water mark lazily, so it may lag the current RSS by a few pages: the peak is at
    least the RSS now, and at least any peak reported before (a report that took the RSS above
    a lagging `ru_maxrss` must not be followed by a lower one)."""
    import psutil

    memory = {"rss_bytes": int(psutil.Process().memory_info().rss), "peak_rss_bytes": None}
    try:
        import resource
    except ImportError:
        return memory
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _PEAK_SEEN[0] = max(int(peak if sys.platform == "darwin" else peak * 1024), memory["rss_bytes"], _PEAK_SEEN[0])
    memory["peak_rss_bytes"] = _PEAK_SEEN[0]
    return memory


class FoldBaseline:
    """The process-wide state a fresh worker starts its first fold with, put back before each
    later fold of its job, so that a fold's result cannot depend on the folds before it.

    Training seeds torch and numpy itself at each stage (`train.algorithm.stage_seed`, `seed_all`,
    which also seeds CUDA's generators) and draws its batch orders from generators of its own;
    this restores the rest: Python's, numpy's and torch's CPU generators, torch's intra-op threads,
    and collects the previous fold's garbage, returning what it freed to the system (glibc keeps
    freed heap pages otherwise: measured, a worker's resident memory between folds stayed at
    ~2.2 GB without this and at ~1.05 GB with it) and CUDA's cached blocks to the device.
    What a job deliberately carries from fold to fold is on disk or content-keyed (the feature
    cache and its file digests, the stage-1 store), so a hit gives what a miss would compute."""

    def __init__(self):
        import random

        import numpy as np
        import torch

        self.python, self.numpy, self.torch = random.getstate(), np.random.get_state(), torch.get_rng_state()
        self.threads = torch.get_num_threads()

    def restore(self) -> None:
        import gc
        import random

        import numpy as np
        import torch

        gc.collect()
        _return_free_memory()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


def _return_free_memory() -> None:
    """glibc's `malloc_trim(0)`: give the heap's free pages back to the system (Linux; elsewhere
    nothing). It changes no allocation that is alive, only the resident size."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass
