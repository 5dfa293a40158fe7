"""Helpers of the cluster and failure tests: a small grid on the tiny corpus, `ser` in a
subprocess (so that every sweep is bounded by a timeout and its Ray is its own), a reference
run without Ray, the comparison of fold outputs, and the processes a test started."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import yaml

from ser_lib.analysis import runs
from ser_lib.experiments.grid import load_grid
from ser_lib.train.loso import run_loso

RUN = "paper/default/seed-0"  # the one run of `write_grid`'s grid
# Seconds a test waits for a sweep; Ray alone takes 20-30 s to start on a loaded 2-core machine.
SWEEP_TIMEOUT = 300
# Record keys that depend on the machine or on what was reused, not on the result.
TIMING_KEYS = {"train_seconds", "train_samples_per_second", "train_samples_seen", "stage1_reused",
               "stage1_train_seconds"}


def write_grid(path: Path, folds: int, cache_dir: Path, **settings) -> Path:
    """One method on `folds` folds with the quick settings of tests/test_experiments.py."""
    quick = {"train.batch_size": 4, "train.stage1_max_epochs": 1, "train.max_epochs": 2, "train.patience": 10,
             "model.conv_channels": "8,8,8,8,8", "model.fusion_dims": "16,16,16", "model.classifier_hidden": 8,
             "cache_dir": str(cache_dir), **settings}
    path.write_text(yaml.safe_dump({"name": path.stem, "profile": "demo", "methods": ["paper"], "folds": folds,
                                    "set": quick}))
    return path


def ser_command(*args) -> list[str]:
    return [sys.executable, "-m", "ser_lib.cli", *map(str, args)]


def run_ser(*args, env=None, timeout=SWEEP_TIMEOUT) -> subprocess.CompletedProcess:
    """`ser ARGS` to its end; its output is shown when it fails."""
    done = subprocess.run(ser_command(*args), env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"ser {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def reference_run(grid_path: Path, manifest: Path, out: Path) -> Path:
    """The grid's run trained fold by fold without Ray (`ser loso`), with a cache of its own."""
    grid = load_grid(grid_path)
    (run,) = grid.runs()
    config = grid.config(run)
    config.cache_dir = str(out / "cache")
    run_loso(config, manifest, out / run.name, progress=False)
    return out / run.name


def assert_same_results(run_dir: Path, reference_dir: Path, speakers: list[str]) -> None:
    """Each fold's test probabilities, predictions, metrics and learning history equal the reference's."""
    for speaker in speakers:
        fold, expected = runs.fold_dir(run_dir, speaker), runs.fold_dir(reference_dir, speaker)
        with np.load(fold / runs.EMBEDDINGS) as got, np.load(expected / runs.EMBEDDINGS) as want:
            assert np.array_equal(got["probs"], want["probs"]), f"fold {speaker}: other probabilities"
        assert (fold / runs.PREDICTIONS_CSV).read_text() == (expected / runs.PREDICTIONS_CSV).read_text()
        got, want = runs.read_fold_record(fold), runs.read_fold_record(expected)
        assert {k: v for k, v in got.items() if k not in TIMING_KEYS} == \
            {k: v for k, v in want.items() if k not in TIMING_KEYS}, f"fold {speaker}: other record"


def wait_for(condition, timeout: float, what: str, poll: float = 0.2, process=None, log=None):
    """The first true value of `condition()` within `timeout` seconds. With `process` (a Popen, e.g.
    the sweep whose progress is awaited), fail at once if it exits first, with the end of `log`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = Path(log).read_text()[-3000:] if log else ""
            raise AssertionError(f"the process exited ({process.returncode}) before {what}:\n{tail}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def process_tree(pid: int) -> list[psutil.Process]:
    """`pid` and its descendants now (psutil keeps each one's start time, so a later check or kill
    never hits a process that reused a pid)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def kill_all(processes: list[psutil.Process]) -> None:
    for process in running(processes):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def environment(**extra) -> dict:
    """This environment without a Ray address a user may have set, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", **extra}
