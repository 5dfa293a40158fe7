"""The precision plan of a paired difference in `ser report`: how precisely a sweep measured a Δ
between a row and its reference, and how many more observations a wanted precision takes.

- The unit of replication. The seeds of one fold share its test speakers and its training data,
  so a report's (draw, fold, seed) pairs are not independent observations. The unit here is the
  (draw, fold) pair, the fold alone when the sweep has no draws: the Δ is first averaged over the
  seeds of a unit, and the interval is a Student-t interval over the unit means, half-width
  t_{0.975, n−1} · SD / √n. (The folds of one draw still share a corpus, so even this is not
  conservative; it is the least the data can claim.)
- Seeds or units. A one-way random-effects (ANOVA) estimate splits the pairs' variance into a
  between-unit part σ²_b and a within-unit (seed) part σ²_w. A unit's mean over k seeds varies by
  σ²_b + σ²_w / k: more seeds shrink only the second part (`seed_share`), more units both.
- Units needed for a half-width: the fewest n ≥ 2 with t_{0.975, n−1} · SD / √n ≤ target at the
  observed SD of the unit means (at the sweep's seeds per unit). Under LOSO the folds of a corpus
  are fixed (one per speaker, 10 for the synthetic corpus), so more units come as whole corpus
  draws; a sweep without draws (a recorded corpus) cannot have more units than its folds.
- Wall time: the trials still to train for those draws (both rows, every seed of a unit, beyond
  the finished ones) × the mean `trial_seconds` of the two rows' trials (trial.json: a trial's wall
  seconds with the others of the sweep running beside it) ÷ the trials that ran at once
  (`concurrency`). Without recorded trial seconds or concurrency there is no estimate (None).
"""

from __future__ import annotations

import math
import os
import socket

import pandas as pd
from scipy import stats

from ..analysis.metrics import CONFIDENCE, MIN_PAIRS_FOR_CI

METRICS = ("ua", "wa")
TARGETS = (2.0, 1.0)  # interval half-widths, in points, that the plan sizes the sweep for


def unit_keys(pairs: pd.DataFrame) -> list[str]:
    """The columns naming a unit of replication: the corpus draw (if any) and the fold."""
    return [key for key in ("draw", "speaker") if key in pairs]


def half_width(sd: float, n: int, confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t interval of a mean of n values with standard deviation sd."""
    return float(stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n))


def units_needed(sd: float, target: float, confidence: float = CONFIDENCE) -> int:
    """The fewest units n ≥ 2 whose interval half-width at `sd` is at most `target`. The t quantile
    exceeds the normal one z, so no n below (z · sd / target)² qualifies: the search starts there."""
    z = stats.norm.ppf((1 + confidence) / 2)
    n = max(2, math.ceil((z * sd / target) ** 2))
    while half_width(sd, n, confidence) > target:
        n += 1
    return n


def variance_components(deltas: pd.Series, units: list[pd.Series]) -> dict:
    """One-way random-effects ANOVA of the pairs' Δ grouped into units: {"between": σ²_b, "within":
    σ²_w}. σ²_w is the pooled variance of the seeds around their unit's mean; σ²_b = (MS_between −
    MS_within) / n0, clipped at 0 (a negative estimate means "no more than the seeds explain"), n0
    the seeds per unit (for unequal counts the usual (N − Σk²/N) / (a − 1)). Both None with a
    single unit; within (and so between) None with one seed per unit, where they cannot be told
    apart."""
    groups = deltas.groupby(units, sort=False)
    k, means = groups.size().to_numpy(), groups.mean().to_numpy()
    a, total = len(k), int(k.sum())
    if a < 2 or total == a:
        return {"between": None, "within": None}
    ms_between = float((k * (means - deltas.mean()) ** 2).sum() / (a - 1))
    ms_within = float(((deltas - groups.transform("mean")) ** 2).sum() / (total - a))
    n0 = (total - (k ** 2).sum() / total) / (a - 1)
    return {"between": max((ms_between - ms_within) / n0, 0.0), "within": ms_within}


def plan(pairs: pd.DataFrame, folds_per_draw: int, draws: bool, trials_at_once: int | None = None,
         targets: tuple[float, ...] = TARGETS) -> dict:
    """The precision plan of one paired Δ. `pairs`: a row's folds matched with its reference's, as
    `report_stats._paired` joins them (columns `ua`, `ua_ref`, `wa`, `wa_ref`, the unit keys, `seed`,
    optionally `trial_seconds` and `trial_seconds_ref`). `folds_per_draw`: the folds of one corpus
    (the sweep's); `draws`: whether more units can come from more corpus draws. Per metric: the Δ
    and the SD over units, the half-width, the variance components, and per target half-width the
    units, draws, more trials and wall seconds it takes (None where unknown or out of reach)."""
    keys = unit_keys(pairs)
    seeds = pairs.groupby(keys, sort=False).size()
    entry = {"n_units": int(len(seeds)), "n_draws": int(pairs["draw"].nunique()) if "draw" in pairs else 1,
             "n_folds": int(pairs["speaker"].nunique()), "folds_per_draw": folds_per_draw,
             "seeds_per_unit": float(seeds.mean()),
             "trial_seconds": mean_trial_seconds(pairs), "trials_at_once": trials_at_once}
    for metric in METRICS:
        if metric in pairs and f"{metric}_ref" in pairs:
            deltas = (pairs[metric] - pairs[f"{metric}_ref"]).astype(float)
            entry[metric] = _metric_plan(deltas, [pairs[k] for k in keys], entry, folds_per_draw, draws, targets)
    return entry


def _metric_plan(deltas: pd.Series, units: list[pd.Series], entry: dict, folds_per_draw: int, draws: bool,
                 targets: tuple[float, ...]) -> dict:
    """One metric's part of `plan`: Δ, SD and half-width over units, the seeds' part, the targets."""
    means = deltas.groupby(units, sort=False).mean()  # the seeds of a unit are one observation
    n = len(means)
    out = {"delta": float(means.mean()), "sd_units": None, "half_width": None, "sd_between": None,
           "sd_within": None, "seed_share": None, "targets": {}}
    if n < MIN_PAIRS_FOR_CI:  # as the report's intervals: an SD from two units says nothing
        return out
    sd = float(means.std(ddof=1))
    out.update(sd_units=sd, half_width=half_width(sd, n))
    parts = variance_components(deltas, units)
    if parts["within"] is not None:
        unit_variance = parts["between"] + parts["within"] / entry["seeds_per_unit"]
        out.update(sd_between=math.sqrt(parts["between"]), sd_within=math.sqrt(parts["within"]),
                   seed_share=parts["within"] / entry["seeds_per_unit"] / unit_variance if unit_variance else None)
    out["targets"] = {f"{t:g}": _sized(units_needed(sd, t), entry, folds_per_draw, draws) for t in targets}
    return out


def _sized(units: int, entry: dict, folds_per_draw: int, draws: bool) -> dict:
    """What `units` units take: whole corpus draws (with draws), the trials beyond the finished
    ones for both rows, and their wall seconds."""
    if draws:
        n_draws = math.ceil(units / folds_per_draw)
        more_units = max(n_draws * folds_per_draw - entry["n_units"], 0)
    elif units <= folds_per_draw:
        n_draws, more_units = None, max(units - entry["n_units"], 0)
    else:  # a fixed corpus has no more folds
        return {"units": units, "draws": None, "reachable": False, "more_trials": None, "wall_seconds": None}
    more_trials = 2 * round(entry["seeds_per_unit"] * more_units)
    known = entry["trial_seconds"] is not None and entry["trials_at_once"]
    wall = more_trials * entry["trial_seconds"] / entry["trials_at_once"] if known else None
    return {"units": units, "draws": n_draws, "reachable": True, "more_trials": more_trials, "wall_seconds": wall}


def mean_trial_seconds(pairs: pd.DataFrame) -> float | None:
    """The mean recorded `trial_seconds` of the row's and the reference's trials; None if none is
    recorded (sweeps from before trial.json held it)."""
    columns = [c for c in ("trial_seconds", "trial_seconds_ref") if c in pairs]
    values = pd.concat([pairs[c] for c in columns]).astype(float).dropna() if columns else pd.Series(dtype=float)
    return float(values.mean()) if len(values) else None


def concurrency(hosts: set, devices: set, threads: int, recorded: int | None = None) -> dict:
    """How many of the sweep's trials ran at once: {"trials_at_once": int or None, "basis": why}.

    `recorded`: what the sweep's last invocation wrote into sweep.json (`last.slots`: the worker
    jobs Ray ran at once, `--concurrency` included). Sweeps from before it was recorded fall back on
    the machine: a local sweep starts Ray with os.cpu_count() CPUs and every trial asks for
    `threads` of them (`placement.start_ray`), so cores // threads trials ran at once. trial.json
    names the host but not its core count, so the cores are those of the machine making the report,
    and only when every trial recorded this machine as its host and ran on the CPU. A cluster, GPU
    trials (their GPU shares are not recorded) or folds without trial.json give None then."""
    if recorded:
        return {"trials_at_once": int(recorded), "basis": "recorded by the sweep in sweep.json"}
    here = socket.gethostname()
    if None in hosts:
        return {"trials_at_once": None, "basis": "not recorded: some folds have no trial.json"}
    if hosts != {here}:
        return {"trials_at_once": None, "basis": f"not recorded: the trials' hosts {sorted(map(str, hosts))} are "
                                                  f"not only this machine ({here}), whose cores are known"}
    if devices != {"cpu"}:
        return {"trials_at_once": None, "basis": "not recorded: trials ran on a GPU, whose shares are not recorded"}
    cores = os.cpu_count() or 1
    return {"trials_at_once": max(cores // threads, 1), "cores": cores, "threads": threads,
            "basis": f"{cores} cores of {here} // {threads} thread(s) per trial, as a local sweep's Ray schedules"}
