"""What a sweep survives: a trial's worker killed mid-fold, the driver killed, and two processes
filling one feature cache at once.

The sweeps run `ser sweep` in a subprocess (bounded by a timeout, with a private Ray of its own)
on a one-method grid of the tiny corpus; their results must equal the same run trained without
Ray and without interruption (`reference`)."""

import hashlib
import multiprocessing
import os
import re
import signal
import subprocess

import pandas as pd
import pytest

from ser_lib.analysis import runs
from ser_lib.config import DataConfig, FeatureConfig
from ser_lib.data.cache import FeatureCache
from ser_lib.data.inputs import row_inputs
from ser_lib.experiments.placement import LOCAL_RAY_JSON
from ser_lib.train.algorithm import STAGE1, STAGE2
from sweeping import (RUN, SWEEP_TIMEOUT, assert_same_results, environment, kill_all, process_tree, reference_run,
                      run_ser, running, ser_command, wait_for, write_grid)

pytestmark = pytest.mark.ray  # starts Ray clusters: `make test` runs these files on one worker

# Stage 1 is trained in the fold (not taken from the shared stage-1 store), so that its
# checkpoint shows whether a retried trial trained it again; eight stage-2 epochs leave time to
# kill a worker between two of them.
SETTINGS = {"runtime.share_stage1": False, "train.max_epochs": 8}
SPEAKERS = ["S1F", "S1M", "S2F", "S2M"]  # the tiny corpus's, sorted as a grid takes its folds


@pytest.fixture(scope="module")
def reference(tiny_corpus, tmp_path_factory):
    """The failure grid's run on all four folds, trained without Ray and without interruption."""
    out = tmp_path_factory.mktemp("reference")
    return reference_run(write_grid(out / "failures.yaml", 4, out / "cache", **SETTINGS), tiny_corpus, out)


def start_sweep(grid, manifest, out, log_path) -> subprocess.Popen:
    with log_path.open("w") as log:
        return subprocess.Popen(ser_command("sweep", "--grid", grid, "--manifest", manifest, "--out", out),
                                env=environment(), stdout=log, stderr=subprocess.STDOUT)


def stop(sweep: subprocess.Popen) -> None:
    """End a sweep a failed test left running, with its Ray."""
    if sweep.poll() is None:
        tree = process_tree(sweep.pid)
        sweep.kill()
        sweep.wait(30)
        kill_all(tree)


def training_stage2(fold) -> int | None:
    """The pid of the worker training `fold` once it is in stage 2 and not finished, else None."""
    info = runs.read_trial_info(fold)
    if info and not info["finished"] and runs.stage_checkpoint(fold, STAGE2).exists() and not runs.is_finished(fold):
        return info["pid"]
    return None


def file_state(path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_trial_whose_worker_is_killed_mid_fold_is_retried_from_its_checkpoint(reference, tiny_corpus, tmp_path):
    grid = write_grid(tmp_path / "failures.yaml", 2, tmp_path / "cache", **SETTINGS)
    out, log = tmp_path / "sweep", tmp_path / "sweep.log"
    victim = runs.fold_dir(out / RUN, SPEAKERS[0])
    sweep = start_sweep(grid, tiny_corpus, out, log)
    try:
        pid = wait_for(lambda: training_stage2(victim), SWEEP_TIMEOUT, "a trial in stage 2", poll=0.05,
                       process=sweep, log=log)
        os.kill(pid, signal.SIGKILL)
        assert not runs.is_finished(victim), "the fold finished before its worker was killed"
        stage1 = file_state(runs.stage_checkpoint(victim, STAGE1))
        sweep.wait(SWEEP_TIMEOUT)
    finally:
        stop(sweep)
    output = log.read_text()
    assert sweep.returncode == 0, output
    assert "2 trials trained, 0 finished before, 0 failed" in output
    retried = runs.read_trial_info(victim)
    assert retried["finished"] and retried["pid"] != pid  # a new worker finished the fold
    assert file_state(runs.stage_checkpoint(victim, STAGE1)) == stage1  # stage 1 was not trained again
    assert_same_results(out / RUN, reference, SPEAKERS[:2])  # stage 2 continued exactly; no epoch twice


@pytest.fixture
def reap():
    """Processes a test started: whatever of them still runs at its end is killed."""
    started = []
    yield started
    kill_all(started)


@pytest.mark.slow
def test_a_sweep_whose_driver_was_killed_resumes_without_rerunning_finished_trials(reference, tiny_corpus,
                                                                                    tmp_path, reap):
    grid = write_grid(tmp_path / "failures.yaml", 4, tmp_path / "cache", **SETTINGS)
    out, log = tmp_path / "sweep", tmp_path / "sweep.log"

    def fold_results():
        return sorted((out / RUN).glob(f"fold-*/{runs.FOLD_RESULT}"))
    sweep = start_sweep(grid, tiny_corpus, out, log)
    try:
        wait_for(fold_results, SWEEP_TIMEOUT, "a finished trial", process=sweep, log=log)
        reap.extend(process_tree(sweep.pid)[1:])  # its private Ray
        names = {p.pid: p.name() for p in reap}
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(30)
    finally:
        stop(sweep)
    assert (out / LOCAL_RAY_JSON).exists()
    # Ray's GCS and raylet die with the driver, its workers within seconds; its two agents stay.
    wait_for(lambda: all("Agent" in names[p.pid] for p in running(reap)), 60, "Ray's workers to end")
    finished = {path: file_state(path) for path in fold_results()}
    assert 1 <= len(finished) < len(SPEAKERS), finished

    done = run_ser("sweep", "--grid", grid, "--manifest", tiny_corpus, "--out", out, "--resume", env=environment())
    print(f"driver killed after {len(finished)} finished trials; ran {sorted(names.values())}; resumed:\n{done.stdout}")
    assert (f"{len(SPEAKERS) - len(finished)} trials trained, {len(finished)} finished before, 0 failed"
            in done.stdout), done.stdout
    ended = {int(pid) for pid in re.findall(r"\(pid (\d+)\)", done.stdout)}
    assert ended <= {p.pid for p in reap}  # nothing but the killed driver's Ray was ended
    assert running(reap) == [], "processes of the killed driver's Ray still run"
    assert not (out / LOCAL_RAY_JSON).exists()
    assert {path: file_state(path) for path in finished} == finished  # no finished trial ran again
    assert_same_results(out / RUN, reference, SPEAKERS)


# ----------------------------------------------------------------------------- one cache, two writers


def _fill_cache(manifest, cache_dir, start, results) -> None:
    """Every utterance's segments and filterbanks through the cache, once `start` lets both go."""
    cache = FeatureCache(cache_dir)
    rows = pd.read_csv(manifest).to_dict("records")
    start.wait()
    inputs = [row_inputs(row, manifest.parent, DataConfig(), FeatureConfig(), cache) for row in rows]
    results.put((cache.hits, cache.misses, cache.corrupt, _digest(inputs)))


def _digest(inputs) -> str:
    digest = hashlib.sha256()
    for segments in inputs:
        for segment in segments:
            digest.update(segment.waveform.numpy().tobytes())
            digest.update(segment.fbank.numpy().tobytes())
    return digest.hexdigest()


def test_two_processes_filling_one_fresh_cache_lose_nothing_and_leave_no_partial_file(tiny_corpus, tmp_path):
    cache_dir = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    writers = [context.Process(target=_fill_cache, args=(tiny_corpus, cache_dir, start, results)) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        outcomes = [results.get(timeout=120) for _ in writers]
        for writer in writers:
            writer.join(30)
            assert writer.exitcode == 0
    finally:
        for writer in writers:
            if writer.is_alive():
                writer.kill()

    rows = pd.read_csv(tiny_corpus).to_dict("records")
    entries = 2 * len(rows)  # one "segments" and one "fbank" entry per utterance
    direct = _digest([row_inputs(row, tiny_corpus.parent, DataConfig(), FeatureConfig()) for row in rows])
    for hits, misses, corrupt, digest in outcomes:
        assert (hits + misses, corrupt, digest) == (entries, 0, direct)  # no half-written entry was read
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert [p for p in files if p.suffix != ".npz"] == []  # no temporary file left
    assert len(files) == entries
    reader = FeatureCache(cache_dir)  # every entry loads, each holding the key it is filed under
    assert _digest([row_inputs(row, tiny_corpus.parent, DataConfig(), FeatureConfig(), reader)
                    for row in rows]) == direct
    assert (reader.hits, reader.misses, reader.corrupt) == (entries, 0, 0)
