"""Where a sweep's trials run: the Ray instance, each trial's CPUs and GPUs, and its device.

- `start_ray`: a local sweep starts its own Ray instance (`address="local"`), never a bare
  `ray.init()`, which would join whatever cluster `ray start` left on the machine; `--address`
  joins a cluster; a Ray the caller already started (a notebook, a test) is used as it is.
- `record_local_ray` / `end_leftover_ray`: the sweep folder notes the processes of its private
  Ray, so that `--resume` after a killed driver ends those still running (and nothing else).
- `gpus_per_trial`: `--gpus-per-trial`, or automatically 0 without GPUs, a quarter of a GPU for
  the tiny encoders (several small trials share one device) and a whole one otherwise.
- `trial_device`: `runtime.device` inside a trial follows what Ray granted. Ray gives a task that
  requested no GPU an empty `CUDA_VISIBLE_DEVICES`, so a trial must not guess: a trial granted
  a GPU that torch cannot see, or one configured for CUDA and granted none, fails saying so
  instead of training on the CPU.
- `describe_cluster`: the sweep's first line, where its trials run.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..config import Config
from ..errors import SerError
from ..files import atomic_write_json

# Encoders small enough that several trials share one GPU (their models are ~1 MB; a trial is
# bound by its data pipeline, not by the GPU).
SMALL_ENCODERS = ("tiny", "tiny-pretrained")
SMALL_TRIAL_GPU_SHARE = 0.25
LOCAL_RAY_JSON = "local_ray.json"  # in the sweep folder while its driver runs a private Ray


def start_ray(address: str | None) -> bool:
    """Connect to `address`, or start a private local instance; True if this call started or
    joined Ray (and the sweep must shut it down), False if the caller's Ray is reused."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    return True


def record_local_ray(folder: Path) -> None:
    """Note the processes of the private Ray instance this driver just started (pid and start
    time), so that a sweep resumed after this driver was killed can end what it left behind."""
    import psutil

    driver, ray_processes = psutil.Process(), []
    for process in driver.children(recursive=True):
        try:
            if _is_ray(process):
                ray_processes.append(_identity(process))
        except psutil.Error:
            pass  # ended meanwhile (an idle worker), or not ours to read
    atomic_write_json(folder / LOCAL_RAY_JSON, {"driver": _identity(driver), "processes": ray_processes})


def end_leftover_ray(folder: Path) -> list[str]:
    """End what the private Ray of a killed driver of this sweep left running, and say what.

    Ray's GCS and raylet die with their driver and the workers follow within seconds, but its
    dashboard and runtime-env agents outlive a killed driver by minutes. Only processes that
    `record_local_ray` noted and that still run with their noted start time are ended (never
    another Ray instance, nor a process that reused a pid), and only once that driver is gone."""
    path = folder / LOCAL_RAY_JSON
    if not path.exists():
        return []
    noted = json.loads(path.read_text())
    if _still_running(noted["driver"]) is not None:
        return []  # that sweep still runs: its Ray is not left over
    import psutil

    ended = []
    for entry in noted["processes"]:
        process = _still_running(entry)
        try:
            if process is not None:
                process.kill()
                ended.append(f"{entry['name']} (pid {entry['pid']})")
        except psutil.NoSuchProcess:
            pass  # it ended by itself meanwhile
    path.unlink()
    return ended


def forget_local_ray(folder: Path) -> None:
    """After `ray.shutdown()`: nothing of this driver's Ray is left to end."""
    (folder / LOCAL_RAY_JSON).unlink(missing_ok=True)


def _is_ray(process) -> bool:
    """A process of Ray's (not another child of a notebook's kernel, say)."""
    command = " ".join(process.cmdline())
    return command.startswith("ray::") or f"{os.sep}ray{os.sep}" in command


def _identity(process) -> dict:
    return {"pid": process.pid, "name": process.name(), "started": process.create_time()}


def _still_running(entry: dict):
    """The process `entry` noted, if it still runs (the same pid and start time), else None."""
    import psutil

    try:
        process = psutil.Process(entry["pid"])
        alive = process.create_time() == entry["started"] and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone, or no longer ours to inspect
        return None
    return process if alive else None


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def gpus_per_trial(config: Config, requested: float | None, available: float) -> float:
    """GPUs one trial of `config` asks Ray for: `requested` if given, else automatic."""
    if config.train.trainer == "smile-svm":
        return 0.0  # scikit-learn's SVM has no GPU path
    if requested is not None:
        if requested < 0 or (requested > 1 and requested != int(requested)):
            raise SerError(f"--gpus-per-trial must be a share in [0, 1] or a whole number of GPUs, got {requested:g}")
        if requested > 0 and available == 0:
            raise SerError(f"--gpus-per-trial {requested:g} but the Ray cluster has no GPU; "
                           "pass 0, or start Ray on GPU nodes")
        return requested
    if available == 0:
        return 0.0
    return SMALL_TRIAL_GPU_SHARE if config.model.encoder in SMALL_ENCODERS else 1.0


def trial_device(configured: str, granted_gpu_ids: list, node: str) -> str:
    """`runtime.device` for a trial from `configured` and the GPU ids Ray granted it."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    if granted_gpu_ids:
        if not torch.cuda.is_available():
            raise SerError(f"Ray granted this trial GPU {granted_gpu_ids} on node {node} "
                           f"(CUDA_VISIBLE_DEVICES={visible}), but torch {torch.__version__} sees no CUDA "
                           "device there; install a CUDA build of torch on that node or pass --gpus-per-trial 0")
        if configured in ("cpu", "mps"):
            return configured  # asked for explicitly; the granted GPU stays idle
        return "cuda"  # Ray's CUDA_VISIBLE_DEVICES makes the granted GPU cuda:0
    if configured.startswith("cuda"):
        raise SerError(f"runtime.device={configured} but Ray granted this trial no GPU on node {node} "
                       f"(CUDA_VISIBLE_DEVICES={visible}); pass --gpus-per-trial, or use runtime.device=auto")
    return "cpu" if configured == "auto" else configured


def granted_gpus() -> tuple[list[str], str | None]:
    """The GPU ids Ray granted the calling task, and the CUDA_VISIBLE_DEVICES it set for them."""
    import ray

    ids = [str(g) for g in ray.get_gpu_ids()] if ray.is_initialized() else []
    return ids, os.environ.get("CUDA_VISIBLE_DEVICES")


def this_node() -> dict:
    """The node a trial runs on, as the trial records it."""
    import ray

    return {"node_ip": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(), "pid": os.getpid()}


def trials_at_once(cpus_per_trial: int, gpu_shares: list[float]) -> int:
    """How many trials of `cpus_per_trial` CPUs and `gpu_shares` GPUs the Ray cluster runs at once
    (by its smallest GPU share), at least 1."""
    return max(_at_once(cpus_per_trial, gpu_shares), 1)


def _at_once(cpus_per_trial: int, gpu_shares: list[float]) -> int:
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    at_once = int(cpus // max(cpus_per_trial, 1))
    positive = [s for s in gpu_shares if s > 0]
    if gpus and positive:
        at_once = min(at_once, int(gpus // min(positive)))
    return at_once


def describe_cluster(cpus_per_trial: int, gpu_shares: list[float]) -> str:
    """One line: nodes, CPUs and GPUs of the Ray cluster, and what each trial gets."""
    import ray

    resources = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    shares = sorted(set(gpu_shares)) or [0.0]
    gpu_text = "/".join(f"{s:g}" for s in shares)
    at_once = _at_once(cpus_per_trial, gpu_shares)
    return (f"Ray: {len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs; each trial gets {cpus_per_trial} CPU(s) and "
            f"{gpu_text} GPU, so up to {at_once} trials at once; trials run on "
            f"{'CUDA' if max(shares) > 0 else 'the CPU'}")
