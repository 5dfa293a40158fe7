"""Worker jobs (`ser_lib/experiments/jobs.py`): several folds of one fold name trained one after
the other in one Ray worker process. The grouping; results equal to one process per fold; a
failing fold that does not stop its job; the memory each fold records; a job whose worker is
killed mid-job, retried and continued."""

import os
import signal

import pytest
import yaml

from ser_lib.analysis import runs
from ser_lib.errors import ConfigError
from ser_lib.experiments.grid import grid_from_dict
from ser_lib.experiments.jobs import group_jobs, job_size, pending_trials
from ser_lib.experiments.sweep import run_sweep
from ser_lib.train.algorithm import STAGE2
from ser_lib.train.loso import run_loso
from sweeping import (SWEEP_TIMEOUT, assert_same_results, environment, kill_all, process_tree, ser_command,
                      wait_for)

pytestmark = pytest.mark.ray  # starts Ray clusters: `make test` runs these files on one worker

QUICK = {"train.batch_size": 4, "train.stage1_max_epochs": 1, "train.max_epochs": 2, "train.patience": 10,
         "model.conv_channels": "8,8,8,8,8", "model.fusion_dims": "16,16,16", "model.classifier_hidden": 8}
SPEAKERS = ["S1F", "S1M"]  # the tiny corpus's first two folds


def trials(runs_, speakers, manifest="m.csv"):
    return [{"run": run, "speaker": speaker, "manifest": manifest} for run in runs_ for speaker in speakers]


def names(jobs, listed):
    return [[(listed[i]["run"], listed[i]["speaker"]) for i in job] for job in jobs]


# ----------------------------------------------------------------------------- grouping


def test_a_job_holds_one_folds_trials_in_run_order_at_most_n():
    listed = trials(["a", "b", "c", "d", "e"], ["S1", "S2"])
    jobs = group_jobs(listed, per_worker=2)
    assert names(jobs, listed) == [
        [("a", "S1"), ("b", "S1")],
        [("a", "S2"), ("b", "S2")],
        [("c", "S1"), ("d", "S1")],
        [("c", "S2"), ("d", "S2")],
        [("e", "S1")],
        [("e", "S2")],
    ]
    assert sorted(i for job in jobs for i in job) == list(range(len(listed)))  # every trial once
    assert group_jobs(list(listed), per_worker=2) == jobs  # deterministic
    assert group_jobs(listed, per_worker=1) == [[i] for i in range(len(listed))]  # today's one per process
    # Five trials of a fold in jobs of at most 4: 3 + 2, not 4 + 1.
    assert [len(job) for job in group_jobs(listed, per_worker=4)] == [3, 3, 2, 2]


def test_other_manifests_are_other_jobs():
    listed = trials(["a", "b"], ["S1"], "draw0.csv") + trials(["c", "d"], ["S1"], "draw1.csv")
    assert names(group_jobs(listed, per_worker=8), listed) == [[("a", "S1"), ("b", "S1")], [("c", "S1"), ("d", "S1")]]


def test_jobs_shrink_so_that_a_short_sweep_fills_the_workers():
    listed = trials([f"r{k}" for k in range(4)], ["S1", "S2"])  # 8 trials
    assert job_size(8, 8, slots=2) == 4 and job_size(8, 8, slots=16) == 1 and job_size(330, 8, slots=16) == 8
    assert [len(job) for job in group_jobs(listed, per_worker=8, slots=2)] == [4, 4]
    assert [len(job) for job in group_jobs(listed, per_worker=8, slots=4)] == [2, 2, 2, 2]
    assert [len(job) for job in group_jobs(listed, per_worker=8)] == [4, 4]  # no slots: N per fold


def test_finished_folds_are_not_pending(tmp_path):
    done = runs.fold_dir(tmp_path / "b", "S1")
    done.mkdir(parents=True)
    (done / runs.FOLD_RESULT).write_text("{}")
    runs.fold_dir(tmp_path / "a", "S2").mkdir(parents=True)  # started, not finished
    pending, finished = pending_trials(tmp_path, ["a", "b", "c"], ["S1", "S2"])
    assert finished == 1
    assert pending == [("a", "S1"), ("a", "S2"), ("b", "S2"), ("c", "S1"), ("c", "S2")]
    listed = [{"run": r, "speaker": s, "manifest": "m.csv"} for r, s in pending]
    assert names(group_jobs(listed, per_worker=3), listed) == [[("a", "S1"), ("c", "S1")],
                                                                [("a", "S2"), ("b", "S2"), ("c", "S2")]]


@pytest.mark.parametrize("value", [0, -1, 1.5, "8", True])
def test_a_bad_trials_per_worker_is_a_config_error(value):
    with pytest.raises(ConfigError, match="g.yaml: trials_per_worker must be a whole number >= 1"):
        grid_from_dict({"trials_per_worker": value}, source="g.yaml")
    assert grid_from_dict({"trials_per_worker": 3}).trials_per_worker == 3
    assert grid_from_dict({}).trials_per_worker is None  # the sweep's default


# ----------------------------------------------------------------------------- sweeps


def write_grid(path, **tree):
    path.write_text(yaml.safe_dump({"name": path.stem, "profile": "demo", **tree}))
    return path


@pytest.fixture(scope="module")
def two_sweeps(tiny_corpus, tmp_path_factory):
    """Two methods on two folds swept twice: in two worker jobs of two folds, and one process per
    fold. Each sweep has a cache (and stage-1 store) of its own."""
    out = tmp_path_factory.mktemp("jobs")
    swept = {}
    for per_worker in (2, 1):
        grid = write_grid(out / f"grid{per_worker}.yaml", methods=["paper", "soft-static"], folds=2,
                          set={**QUICK, "cache_dir": str(out / f"cache{per_worker}")})
        outcome = run_sweep(grid, tiny_corpus, out / f"n{per_worker}", progress=False, trials_per_worker=per_worker)
        swept[per_worker] = (out / f"n{per_worker}", outcome)
    return swept


def test_folds_trained_in_a_job_equal_folds_trained_alone(two_sweeps):
    (jobs, together), (alone, single) = two_sweeps[2], two_sweeps[1]
    assert (together.trained, together.failed, single.trained, single.failed) == (4, [], 4, [])
    for speaker in SPEAKERS:
        first, second = (runs.read_trial_info(runs.fold_dir(jobs / run, speaker))
                         for run in ("paper/default/seed-0", "soft-static/default/seed-0"))
        # One job per fold: the paper fold first, then soft-static in the same process.
        assert (first["job_position"], second["job_position"], first["job_folds"]) == (1, 2, 2)
        assert first["pid"] == second["pid"] and first["job"] == second["job"]
        assert 0 < second["trial_seconds"] < 600  # the fold's seconds, not the job's
        for run in ("paper/default/seed-0", "soft-static/default/seed-0"):
            got, want = runs.fold_dir(jobs / run, speaker), runs.fold_dir(alone / run, speaker)
            assert runs.read_trial_info(want)["job_folds"] == 1
            assert (got / runs.PREDICTIONS_CSV).read_bytes() == (want / runs.PREDICTIONS_CSV).read_bytes(), \
                f"{run} fold {speaker}: other predictions in a job"


def test_each_fold_records_the_workers_memory(two_sweeps):
    jobs, _ = two_sweeps[2]
    for speaker in SPEAKERS:
        infos = [runs.read_trial_info(runs.fold_dir(jobs / run, speaker))
                 for run in ("paper/default/seed-0", "soft-static/default/seed-0")]
        for info in infos:
            assert info["finished"] and info["rss_bytes"] > 50 * 2**20  # torch alone is more
            assert info["peak_rss_bytes"] >= info["rss_bytes"]
        assert infos[1]["peak_rss_bytes"] >= infos[0]["peak_rss_bytes"]  # the peak so far, in one process
        print(f"fold {speaker}: peak RSS by position in its job "
              f"{[round(i['peak_rss_bytes'] / 2**20) for i in infos]} MiB")


def test_a_failing_fold_does_not_stop_the_other_folds_of_its_job(tiny_corpus, tmp_path):
    grid = write_grid(tmp_path / "fails.yaml", methods=["smile-svm"], folds=1, trials_per_worker=2,
                      set={"cache_dir": str(tmp_path / "cache")},
                      grid={"train.smile_sets": ["NoSuchSet", "eGeMAPSv02"]})
    outcome = run_sweep(grid, tiny_corpus, tmp_path / "out", progress=False, concurrency=1)
    (failure,) = outcome.failed
    assert failure["trial"] == "smile-svm/train.smile_sets=NoSuchSet/seed-0/fold-S1F"
    assert "NoSuchSet" in failure["error"] and outcome.trained == 1
    failed = runs.read_trial_info(runs.fold_dir(tmp_path / "out/smile-svm/train.smile_sets=NoSuchSet/seed-0", "S1F"))
    good = runs.fold_dir(tmp_path / "out/smile-svm/train.smile_sets=eGeMAPSv02/seed-0", "S1F")
    assert runs.is_finished(good)
    info = runs.read_trial_info(good)
    assert (info["job_position"], info["job_folds"], info["pid"]) == (2, 2, failed["pid"])  # after it, same worker


# ----------------------------------------------------------------------------- a killed worker


@pytest.mark.slow
def test_a_job_whose_worker_is_killed_in_its_second_fold_is_retried_and_continues(tiny_corpus, tmp_path):
    """Two seeds on one fold: one job. Its worker is killed in the second fold's stage 2; the
    retried job leaves the first fold as it was and continues the second from its checkpoint."""
    settings = {**QUICK, "runtime.share_stage1": False, "train.max_epochs": 8, "cache_dir": str(tmp_path / "cache")}
    grid = write_grid(tmp_path / "killed.yaml", methods=["paper"], seeds=[0, 1], folds=1, trials_per_worker=2,
                      set=settings)
    out, log = tmp_path / "sweep", tmp_path / "sweep.log"
    first, second = (runs.fold_dir(out / f"paper/default/seed-{seed}", "S1F") for seed in (0, 1))

    def in_stage2():
        info = runs.read_trial_info(second)
        if info and not info["finished"] and runs.stage_checkpoint(second, STAGE2).exists():
            return info["pid"]
        return None
    with log.open("w") as stream:
        sweep = subprocess_sweep(grid, tiny_corpus, out, stream)
    try:
        pid = wait_for(in_stage2, SWEEP_TIMEOUT, "the job's second fold in stage 2", poll=0.05,
                       process=sweep, log=log)
        first_result = (first / runs.FOLD_RESULT).read_bytes()
        os.kill(pid, signal.SIGKILL)
        sweep.wait(SWEEP_TIMEOUT)
    finally:
        if sweep.poll() is None:
            tree = process_tree(sweep.pid)
            sweep.kill()
            kill_all(tree)
    output = log.read_text()
    assert sweep.returncode == 0, output
    assert "2 trials trained, 0 finished before, 0 failed" in output
    assert runs.read_trial_info(first)["pid"] == pid  # the first fold was trained before the kill ...
    assert (first / runs.FOLD_RESULT).read_bytes() == first_result  # ... and not again
    retried = runs.read_trial_info(second)
    assert retried["finished"] and retried["pid"] != pid and retried["job_position"] == 2
    reference = tmp_path / "reference"
    config = grid_from_dict(yaml.safe_load(grid.read_text())).configs()["paper/default/seed-1"]
    config.cache_dir, config.eval.folds = str(reference / "cache"), ("S1F",)
    run_loso(config, tiny_corpus, reference / "run", progress=False)
    assert_same_results(out / "paper/default/seed-1", reference / "run", ["S1F"])  # no epoch twice


def subprocess_sweep(grid, manifest, out, stream):
    import subprocess

    # One worker at a time, or the two folds would be two jobs of one (`jobs.job_size`).
    return subprocess.Popen(ser_command("sweep", "--grid", grid, "--manifest", manifest, "--out", out,
                                        "--concurrency", 1),
                            env=environment(), stdout=stream, stderr=subprocess.STDOUT)


def test_the_reported_peak_never_goes_down_when_the_kernels_high_water_mark_lags(monkeypatch):
    import resource

    from ser_lib.experiments import jobs

    rss = iter([900 * 2**20, 800 * 2**20])  # the RSS above a lagging ru_maxrss, then back down
    monkeypatch.setattr(jobs, "_PEAK_SEEN", [0])
    monkeypatch.setattr("psutil.Process.memory_info", lambda self: type("Info", (), {"rss": next(rss)})())
    monkeypatch.setattr(resource, "getrusage", lambda who: type("Usage", (), {"ru_maxrss": 850 * 1024})())
    first, second = jobs.worker_memory(), jobs.worker_memory()
    assert first["peak_rss_bytes"] == 900 * 2**20
    assert second["peak_rss_bytes"] == 900 * 2**20 and second["rss_bytes"] == 800 * 2**20
