"""Training throughput: segments per second of one stage-1 and one stage-2 training step.

Stage 1 is the `TemporalClassifier` on clear rows, stage 2 the `SERModel` with the joint loss,
half its rows ambiguous, both at `train.batch_size`. The steps are training's own: the batch
is collated as the training loader does, the step is `train.stage`'s `forward_loss` and
`optimizer_step` with the run's `runtime.precision` (and its loss scaler under fp16), and
with `model.freeze_feature_encoder` the front end's output is precomputed by
`train.algorithm.freeze_front_end`. Warm-up steps are excluded. The FLOPs of the timed steps
are counted by replaying them under the counter with the same seeds (layer drop and time
masking make steps differ), backward included.
"""

from __future__ import annotations

import math
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import Config
from ..data.batching import collate
from ..errors import ConfigError
from ..method.losses import JointLoss
from ..runtime import HALF_DTYPES, autocast_dtype, grad_scaler, seed_all, synchronize, to_device
from ..train.algorithm import freeze_front_end
from ..train.stage import forward_loss, make_optimizer, optimizer_step
from .peaks import measure_peaks, percent_of_peak
from .workload import build_bench_model, training_samples, with_encoder

# Stage 2 trains on clear and ambiguous segments together; half of its benchmark rows are ambiguous.
AMBIGUOUS_FRACTION = 0.5
DTYPE_NAMES = {None: "fp32", **{dtype: name for name, dtype in HALF_DTYPES.items()}}  # of runtime.autocast_dtype


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
    """Segments per second and GFLOP/s of stage-1 and stage-2 training steps.

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
    has_stage1 = config.model.variant != "spatial"
    results["stage1"] = _stage_throughput(config, device, True, 0.0, length_s, steps, warmup) if has_stage1 else None
    results["stage2"] = _stage_throughput(config, device, False, AMBIGUOUS_FRACTION, length_s, steps, warmup)
    for stage in filter(None, (results["stage1"], results["stage2"])):
        stage["percent_of_peak"] = percent_of_peak(stage["gflops_per_s"], peaks, dtype)
    return results


def _stage_throughput(config: Config, device: torch.device, stage1: bool, ambiguous_fraction: float,
                      length_s: float, steps: int, warmup: int) -> dict:
    """One stage's timings and FLOPs on one batch, built as training builds it."""
    model = build_bench_model(config, stage1=stage1).to(device)
    samples = training_samples(config, length_s, ambiguous_fraction)
    if config.model.freeze_feature_encoder:
        freeze_front_end(model.temporal, samples, device)
    batch = to_device(collate(list(enumerate(samples))), device)
    seconds, flops = _time_training_steps(model, batch, config, device, steps, warmup)
    return {"segments_per_s": steps * config.train.batch_size / seconds, "step_ms": 1000 * seconds / steps,
            "flops_per_step": flops // steps, "gflops_per_s": flops / seconds / 1e9}


def _time_training_steps(model: torch.nn.Module, batch: dict, config: Config, device: torch.device,
                         steps: int, warmup: int) -> tuple[float, int]:
    """(seconds, FLOPs) of `steps` training steps after `warmup` untimed ones. The FLOPs come
    from replaying the timed steps under the counter with the same seeds."""
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
