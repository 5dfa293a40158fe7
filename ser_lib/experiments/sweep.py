"""`ser sweep`: a grid of runs (`experiments.grid`) trained fold by fold as Ray Tune trials.

Every trial is one LOSO fold of one run and writes the usual fold folder, so the sweep folder
is a tree of ordinary run folders (`METHOD/POINT/seed-N/fold-SPK`) that `ser report`, the
notebooks and `ser loso --resume` all read. Ray only schedules: a private local Ray by default
(one worker per `threads` cores), or an existing cluster with `address` (the sweep folder, the
manifest's audio and the feature cache must then be on a filesystem every node sees). Workers get
GPUs when the cluster has them (`placement`), and each fold records the node it ran on.

A Ray trial is a *worker job* (`jobs`): up to `trials_per_worker` folds of one fold name (the
grid's `trials_per_worker:`, `--trials-per-worker`, default `jobs.DEFAULT_TRIALS_PER_WORKER`),
trained one after the other in one fresh worker process that then exits, so the ~7 s of worker
start-up and imports is paid once per job and a worker's memory is bounded. Each fold records
in its `trial.json` its own seconds, its place in its job and the worker's resident and peak
memory after it. 1 gives one process per fold.

Resuming is by the files, not by Ray's state: a fold with `fold_result.json` is finished and is
never run again, an interrupted fold continues from its checkpoint, and a failed fold is
reported and does not stop the others, in its job or elsewhere. A job whose worker dies (killed,
out of memory, a lost node) is retried by Ray up to `TRIAL_RETRIES` times and continues with its
unfinished folds, each from its checkpoint. A killed driver leaves some of its private Ray
running for minutes; the next sweep on the folder ends those processes
(`placement.end_leftover_ray`). After the trials, every run whose folds are all finished gets
its `results.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..analysis import runs
from ..config import Config, config_from_dict
from ..data.folds import fold_names
from ..data.labels import Partition, load_partition
from ..errors import ConfigError, SerError
from ..files import atomic_write_json, atomic_write_text, project_path
from ..model.encoder import absolute_encoder
from .corpora import corpus_label, run_manifests
from .grid import Grid, Run, load_grid
from .jobs import (DEFAULT_TRIALS_PER_WORKER, FoldBaseline, check_trials_per_worker, group_jobs, pending_trials,
                   worker_memory)
from .placement import (cluster_gpus, describe_cluster, end_leftover_ray, forget_local_ray, gpus_per_trial,
                        granted_gpus, record_local_ray, start_ray, this_node, trial_device, trials_at_once)

SWEEP_JSON = "sweep.json"
GRID_YAML = "grid.yaml"
RAY_DIR = "ray"
TRIAL_RETRIES = 2  # a job whose worker was killed is restarted this often; a fold that fails by itself fails again


@dataclass
class SweepOutcome:
    trials: int  # in the grid
    already_finished: int
    trained: int
    failed: list[dict] = field(default_factory=list)  # {"trial", "error"}
    wall_seconds: float = 0.0
    complete_runs: list[str] = field(default_factory=list)
    slots: int | None = None  # worker jobs run at once (`ser report`'s precision plan reads it)


def run_sweep(grid_path: str | Path, manifest_path: str | Path | None, out: str | Path, address: str | None = None,
              resume: bool = False, concurrency: int | None = None, progress: bool = True,
              gpus: float | None = None, trials_per_worker: int | None = None) -> SweepOutcome:
    """Train every pending fold of the grid's runs; return what happened.

    `manifest_path` is every run's corpus; None for a grid that generates its own (`corpus: synth`,
    `experiments.corpora`). `gpus` is each worker's share of a GPU (`--gpus-per-trial`); None picks
    it from the cluster (`placement.gpus_per_trial`). `trials_per_worker` (`--trials-per-worker`)
    overrides the grid's folds per worker process (`jobs`)."""
    started = time.perf_counter()
    grid, out = load_grid(grid_path), Path(out).resolve()
    per_worker = check_trials_per_worker(
        trials_per_worker if trials_per_worker is not None else grid.trials_per_worker or DEFAULT_TRIALS_PER_WORKER,
        "--trials-per-worker" if trials_per_worker is not None else str(grid_path))
    configs = grid.configs()
    manifests = run_manifests(grid, configs, manifest_path, progress)
    corpus = corpus_label(grid, manifest_path)
    _claim_folder(out, grid, corpus, resume)
    speakers = grid.speakers(_fold_names(grid.name, configs, _partitions(configs, manifests)))

    for run in grid.runs():
        config = configs[run.name]
        config.cache_dir = str(project_path(config.cache_dir))
        config.model.encoder = absolute_encoder(config.model.encoder)  # a local folder, as the cwd names it
        runs.record_config(out / run.name, config, resume=True)  # refuses a run started with other settings
        runs.record_manifest(out / run.name, manifests[run.name])
    pending, finished = pending_trials(out, [run.name for run in grid.runs()], speakers)
    trials = [{"run": run, "speaker": speaker, "config": configs[run].to_dict(), "manifest": str(manifests[run])}
              for run, speaker in pending]
    outcome = SweepOutcome(trials=finished + len(trials), already_finished=finished, trained=0)
    if progress:
        print(f"sweep {grid.name}: {len(grid.runs())} runs x {len(speakers)} folds = {outcome.trials} trials, "
              f"{finished} finished before, {len(trials)} to train")
    _write_state(out, grid, corpus, speakers, outcome)  # `ser report` can read a sweep still running
    if trials:
        outcome.trained, outcome.failed, outcome.slots = _tune(trials, out, grid, address, concurrency, progress, gpus, per_worker)
    outcome.complete_runs = _summarize_complete(out, grid.runs(), speakers)
    outcome.wall_seconds = time.perf_counter() - started
    _write_state(out, grid, corpus, speakers, outcome)
    return outcome


def train_job(specs: list[dict[str, Any]], job: int, folds: list[int], report) -> None:
    """One worker job: the folds `folds` (indices into `specs`) one after the other in this
    process, each announced by `report({"fold_index": index, ...})`: its metrics, or "error" for a
    workbench error (a bad setting or file, a missing GPU), which retrying cannot mend.

    A fold finished by an earlier attempt of this job is announced again without training (the
    driver counts each fold once). Any other exception is the worker's, not the fold's: it is
    announced as "crashed", the job goes on with its other folds and raises at its end, so that
    Ray retries the job, which continues with the folds not finished."""
    baseline, crashed = FoldBaseline(), []
    for position, index in enumerate(folds, start=1):
        spec = specs[index]
        fold_dir = runs.fold_dir(Path(spec["out"]) / spec["run"], spec["speaker"])
        if runs.is_finished(fold_dir):
            report({"fold_index": index, **_metrics(runs.read_fold_record(fold_dir)), "trained_before": True})
            continue
        baseline.restore()
        try:
            result = train_trial(spec, {"job": job, "job_position": position, "job_folds": len(folds)})
        except SerError as error:
            result = {"error": str(error)}
        except Exception as error:  # noqa: BLE001 - the job goes on; Ray retries it at its end
            crashed.append(f"{spec['run']}/fold-{spec['speaker']}: {type(error).__name__}: {error}")
            result = {"crashed": f"{type(error).__name__}: {error}"}
        report({"fold_index": index, **result})
    if crashed:
        raise RuntimeError(f"{len(crashed)} of the {len(folds)} folds of worker job {job} crashed: "
                           + "; ".join(crashed))


def _metrics(record: dict) -> dict[str, Any]:
    return {"wa": record["wa"], "ua": record["ua"], "macro_f1": record.get("macro_f1")}


def train_trial(spec: dict[str, Any], job: dict[str, int] | None = None) -> dict[str, Any]:
    """One trial: one fold of one run, resumed from its checkpoint if it has one. `job` is its
    place in its worker job (`train_job`), recorded in `trial.json` with the worker's memory."""
    import torch

    from ..data.cache import FeatureCache
    from ..data.folds import make_folds
    from ..runtime import apply_threads, code_version, describe_machine
    from ..train.loso import train_any_fold

    config = config_from_dict(spec["config"], source=f"trial {spec['run']}/{spec['speaker']}")
    config.eval.folds = (spec["speaker"],)
    node = this_node()
    granted, _ = granted_gpus()
    config.runtime.device = trial_device(config.runtime.device, granted, node["node_ip"])
    apply_threads(config.runtime)
    parted = load_partition(spec["manifest"], config.data)
    (fold,) = make_folds(parted, config.eval)
    fold_dir = runs.fold_dir(Path(spec["out"]) / spec["run"], spec["speaker"])
    started = time.perf_counter()
    machine = describe_machine(torch.device(config.runtime.device), config.runtime.precision)
    where = {**node, "gpu_ids": granted, "device": config.runtime.device, "machine": machine,
             "code": code_version(), **(job or {"job": None, "job_position": 1, "job_folds": 1})}
    runs.write_trial_info(fold_dir, {**where, "finished": False})
    record = train_any_fold(config, parted, fold, fold_dir, FeatureCache(config.cache_dir), resume=True,
                            progress=False)
    seconds = time.perf_counter() - started
    memory = worker_memory()  # after the fold: resident now, and the worker's peak so far
    runs.write_trial_info(fold_dir, {**where, "finished": True, "trial_seconds": round(seconds, 2), **memory})
    return {**_metrics(record), "trial_seconds": seconds, "node_ip": node["node_ip"], **memory}


def _fold_names(grid_name: str, configs: dict[str, Config], partitions: dict[str, Partition]) -> list[str]:
    """The folds every run of the grid (`configs`, by run name) shares: the speakers (LOSO) or
    k01-of-K ... (eval.kfold). Runs on other folds could not be paired fold by fold, so the grid
    may not vary the scheme, and the corpora (`partitions`, by manifest) of a grid that generates
    several must have the same folds."""
    schemes = {(c.eval.kfold, c.eval.fold_seed) for c in configs.values()}
    if len(schemes) > 1:
        raise ConfigError(f"grid {grid_name!r}: its runs use different folds (eval.kfold, eval.fold_seed) "
                          f"{sorted(schemes)}; set them once, under `set:`")
    evaluation = next(iter(configs.values())).eval
    folds = {corpus: fold_names(parted, evaluation) for corpus, parted in partitions.items()}
    if len({tuple(names) for names in folds.values()}) > 1:
        listing = "; ".join(f"{corpus}: {names}" for corpus, names in folds.items())
        raise ConfigError(f"grid {grid_name!r}: its corpora have different folds, so runs could not be paired: {listing}")
    return next(iter(folds.values()))


def _partitions(configs: dict[str, Config], manifests: dict[str, Path]) -> dict[str, Partition]:
    """Each distinct manifest's partition, by the data settings of the first run on it."""
    partitions = {}
    for name, config in configs.items():
        manifest = str(manifests[name])
        if manifest not in partitions:
            partitions[manifest] = load_partition(manifest, config.data)
    return partitions


def _indexed_job(params: dict[str, Any], specs: list[dict], jobs: list[list[int]]) -> None:
    """A worker job by its index (`train_job`); each fold's result is reported to Tune as it ends."""
    from ray import tune

    train_job(specs, params["job"], jobs[params["job"]], tune.report)


def _tune(trials: list[dict], out: Path, grid: Grid, address: str | None, concurrency: int | None,
          progress: bool, gpus: float | None, per_worker: int) -> tuple[int, list[dict], int]:
    import ray
    from ray import tune

    ended = end_leftover_ray(out)
    if ended and progress:
        print(f"ended what the Ray of this sweep's killed driver left running: {', '.join(ended)}")
    owns_ray = start_ray(address)
    if owns_ray and not address:
        record_local_ray(out)
    try:
        available = cluster_gpus()
        specs = [{**t, "out": str(out),
                  "gpus": gpus_per_trial(config_from_dict(t["config"]), gpus, available)} for t in trials]
        shares = [s["gpus"] for s in specs]
        slots = trials_at_once(grid.threads, shares)
        slots = min(concurrency, slots) if concurrency else slots
        jobs = group_jobs(specs, per_worker, slots)
        job_gpus = [max(specs[i]["gpus"] for i in job) for job in jobs]  # the largest share of its folds
        if progress:
            print(describe_cluster(grid.threads, shares))
            print(f"{len(specs)} folds in {len(jobs)} worker jobs of up to {max(map(len, jobs))} "
                  f"(--trials-per-worker {per_worker})")
        callback = _progress_callback(specs, jobs, progress)
        # The specs travel through Ray's object store; the trial's only parameter is its job's
        # index, so Ray's trial names and logs stay short.
        trainable = tune.with_resources(tune.with_parameters(_indexed_job, specs=specs, jobs=jobs),
                                        lambda params: {"cpu": grid.threads, "gpu": job_gpus[params["job"]]})
        tuner = tune.Tuner(
            trainable,
            param_space={"job": tune.grid_search(list(range(len(jobs))))},
            # A fresh worker process per job (Ray's default), which exits after its folds: reused
            # actors would save more of the ~7 s of imports, but their memory grew from 4.7 to
            # 5.8 GB over two more tiny-encoder trials (a fresh trial peaks at 2.1 GB), which a
            # 330-trial sweep cannot afford; a job's memory is bounded by its few folds.
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrency or None),
            run_config=tune.RunConfig(name=grid.name, storage_path=str(out / RAY_DIR), verbose=0,
                                      callbacks=[callback],
                                      failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES)),
        )
        tuner.fit()
    finally:
        if owns_ray:
            ray.shutdown()
            forget_local_ray(out)
    return callback.completed, callback.failed, slots


def _progress_callback(specs: list[dict], jobs: list[list[int]], progress: bool):
    """A Tune callback with one progress bar over the folds and a line per failed fold. A job
    reports each fold as it ends; a retried job reports again the folds it had finished, and
    each fold is counted once."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.completed, self.failed = 0, []
            self.counted: set[int] = set()  # folds completed or failed
            self.crashed: dict[int, str] = {}  # a fold's exception in a job that Ray may still retry
            self.bar = tqdm(total=len(specs), desc="sweep trials", unit="fold", disable=not progress)

        def __getstate__(self):  # Ray pickles callbacks with its experiment state; a bar holds a stream
            return {**self.__dict__, "bar": None}

        @staticmethod
        def _name(index: int) -> str:
            spec = specs[index]
            return f"{spec['run']}/fold-{spec['speaker']}"

        def on_trial_result(self, iteration, trials, trial, result, **info):
            index = result.get("fold_index")
            if index is None or index in self.counted:
                return
            if "crashed" in result:
                self.crashed[index] = result["crashed"]
            elif "error" in result:
                self._fail(index, result["error"])
            else:
                self.counted.add(index)
                self.completed += 1
                self.bar.set_postfix_str(f"{self._name(index)} WA {result.get('wa', float('nan')):.1f}")
                self.bar.update()

        def on_trial_complete(self, iteration, trials, trial, **info):
            for index in jobs[trial.config["job"]]:  # a job that ended without reporting a fold
                if index not in self.counted:
                    self._fail(index, self.crashed.get(index, "its worker job ended without training it"))

        def on_trial_error(self, iteration, trials, trial, **info):
            error = _error_text(trial)
            for index in jobs[trial.config["job"]]:
                if index not in self.counted:
                    self._fail(index, self.crashed.get(index, error))

        def _fail(self, index: int, error: str):
            self.counted.add(index)
            self.failed.append({"trial": self._name(index), "error": error})
            tqdm.write(f"FAILED {self._name(index)}: {error}")
            self.bar.update()

    return Progress()


def _error_text(trial) -> str:
    """The last line of a failed trial's traceback (Ray keeps the whole one in its error file)."""
    path = getattr(trial, "error_file", None) or getattr(getattr(trial, "run_metadata", None), "error_filename", None)
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "unknown error"
    except (OSError, TypeError):
        return "unknown error (no error file)"


def _claim_folder(out: Path, grid: Grid, corpus: str, resume: bool) -> None:
    """A new sweep needs an empty or new folder; --resume continues one (its grid may have grown)."""
    state = out / SWEEP_JSON
    if state.exists() and not resume:
        raise SerError(f"{out} already holds a sweep; pass --resume to continue it or choose another --out")
    if state.exists():
        recorded = json.loads(state.read_text()).get("manifest")
        if recorded and recorded != corpus:
            raise SerError(f"{out} was swept on {recorded}, not {corpus}; choose another --out")
    elif out.exists() and any(out.iterdir()) and not resume:
        raise SerError(f"{out} is not empty and holds no sweep; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / GRID_YAML, _grid_yaml(grid))


def _grid_yaml(grid: Grid) -> str:
    import yaml

    return yaml.safe_dump(grid.to_dict(), sort_keys=False)


def _summarize_complete(out: Path, grid_runs: list[Run], speakers: list[str]) -> list[str]:
    """Write results.json for every run whose folds are all finished; return their names."""
    from ..train.loso import summarize_run

    complete = []
    for run in grid_runs:
        run_dir = out / run.name
        if all(runs.is_finished(runs.fold_dir(run_dir, s)) for s in speakers):
            records = [runs.read_fold_record(runs.fold_dir(run_dir, s)) for s in speakers]
            summarize_run(run_dir, runs.read_config(run_dir), records)
            complete.append(run.name)
    return complete


def _write_state(out: Path, grid: Grid, corpus: str, speakers: list[str], outcome: SweepOutcome) -> None:
    """sweep.json: the grid, the corpus (`corpora.corpus_label`), every run (method, point, seed) and
    the last outcome."""
    state = out / SWEEP_JSON
    known = json.loads(state.read_text())["runs"] if state.exists() else []
    names = {r["run"] for r in known}
    known += [{"run": r.name, "method": r.method, "point": r.point, "seed": r.seed}
              for r in grid.runs() if r.name not in names]
    atomic_write_json(state, {
        "grid": grid.to_dict(), "manifest": corpus, "speakers": speakers,
        "runs": known,  # every run this folder was ever swept with (a resumed grid may have grown)
        "last": {"trials": outcome.trials, "already_finished": outcome.already_finished,
                 "trained": outcome.trained, "failed": outcome.failed,
                 "wall_seconds": round(outcome.wall_seconds, 1), "complete_runs": len(outcome.complete_runs),
                 "slots": outcome.slots},
    })

