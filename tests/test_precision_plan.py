"""The precision plan of `ser report` (`experiments.precision`): the arithmetic against a case
computed by hand, seeds averaged within a (draw, fold) unit, and the plan in report.md and
report.json of a small sweep folder written by hand (nothing is trained)."""

import json
import os
import socket

import pandas as pd
import pytest

from ser_lib.analysis import runs
from ser_lib.experiments import precision
from ser_lib.experiments.grid import grid_from_dict
from ser_lib.experiments.report import SweepSummary, collect, format_report, precision_plans, write_report
from ser_lib.experiments.sweep import SWEEP_JSON

# The hand-computed case: ΔUA (paper − soft-static) averaged over the seeds of each (draw, fold) unit.
UNIT_MEANS = {(0, "A"): 7.0, (0, "B"): -5.0, (0, "C"): 5.0, (0, "D"): -3.0, (0, "E"): 3.0,
              (1, "A"): -1.0, (1, "B"): 5.0, (1, "C"): -3.0, (1, "D"): 1.0, (1, "E"): 1.0}
# Mean of the 10 unit means: (7 − 5 + 5 − 3 + 3 − 1 + 5 − 3 + 1 + 1) / 10 = 10 / 10 = 1.
# Deviations 6, −6, 4, −4, 2, −2, 4, −4, 0, 0; squares sum to 36+36+16+16+4+4+16+16 = 144;
# SD = √(144 / 9) = √16 = 4.
# Half-width over 10 units: t_{0.975, 9} · 4 / √10 = 2.2622 · 4 / 3.16228 = 2.8615 (t from a t-table).
T_975_9 = 2.2622
# Units for ±2: t > z = 1.96, so no n below (1.96 · 4 / 2)² = 15.4 qualifies; from n = 16:
#   n = 16: t_{15} = 2.1314 · 4 / 4.0000 = 2.1314 > 2
#   n = 17: t_{16} = 2.1199 · 4 / 4.1231 = 2.0566 > 2
#   n = 18: t_{17} = 2.1098 · 4 / 4.2426 = 1.9892 ≤ 2  -> 18 units, ceil(18 / 5) = 4 draws of 5 folds
# Units for ±1: from (1.96 · 4 / 1)² = 61.5, n = 62:
#   n = 62: t_{61} = 1.9996 · 4 / 7.8740 = 1.0158 > 1
#   n = 63: t_{62} = 1.9990 · 4 / 7.9373 = 1.0074 > 1
#   n = 64: t_{63} = 1.9983 · 4 / 8.0000 = 0.9992 ≤ 1  -> 64 units, ceil(64 / 5) = 13 draws
# Seeds 0 and 1 of a unit are its mean + 1 and − 1, so within a unit (seeds): MS_w = 20 pairs · 1² /
# (20 − 10) = 2, σ_w = √2 = 1.414; between: MS_b = 2 seeds · 144 / 9 = 32, σ²_b = (32 − 2) / 2 = 15,
# σ_b = √15 = 3.873 (check: σ²_b + σ²_w / 2 = 15 + 1 = 16 = SD²); the seeds' share 1 / 16.
# Wall time: trials of 140 s (paper) and 100 s (soft-static), mean 120 s; 8 cores // 2 threads = 4 at once.
#   ±2: 4 draws = 20 units, 10 more × 2 seeds × 2 rows = 40 trials · 120 s / 4 = 1200 s = 20 min
#   ±1: 13 draws = 65 units, 55 more × 2 × 2 = 220 trials · 120 s / 4 = 6600 s = 1.83 h
PLAN_ROW = ("| soft-static vs paper | 10 (2 × 5) | 2 | 4.00 (3.87 / 1.41) | -1.00 ± 2.86 | 18 / 64 | 4 / 13 "
            "| 20 min / 1.8 h |")


def pairs_frame(spread: dict[int, float] = {0: 1.0, 1: -1.0}) -> pd.DataFrame:
    """Matched folds as `report_stats._paired` joins them: seed s of a unit is its mean + spread[s]."""
    rows = [{"draw": draw, "speaker": speaker, "seed": seed, "ua": 60.0 + mean + offset, "ua_ref": 60.0,
             "wa": 50.0 + mean, "wa_ref": 50.0, "trial_seconds": 140.0, "trial_seconds_ref": 100.0}
            for (draw, speaker), mean in UNIT_MEANS.items() for seed, offset in spread.items()]
    return pd.DataFrame(rows)


def test_the_plan_matches_the_hand_computed_case():
    plan = precision.plan(pairs_frame(), folds_per_draw=5, draws=True, trials_at_once=4)
    assert (plan["n_units"], plan["n_draws"], plan["n_folds"], plan["seeds_per_unit"]) == (10, 2, 5, 2.0)
    ua = plan["ua"]
    assert ua["delta"] == pytest.approx(1.0) and ua["sd_units"] == pytest.approx(4.0)
    assert ua["half_width"] == pytest.approx(T_975_9 * 4 / 10 ** 0.5, abs=1e-4)
    assert ua["sd_within"] == pytest.approx(2 ** 0.5) and ua["sd_between"] == pytest.approx(15 ** 0.5)
    assert ua["seed_share"] == pytest.approx(1 / 16)
    assert ua["targets"] == {
        "2": {"units": 18, "draws": 4, "reachable": True, "more_trials": 40, "wall_seconds": pytest.approx(1200.0)},
        "1": {"units": 64, "draws": 13, "reachable": True, "more_trials": 220, "wall_seconds": pytest.approx(6600.0)}}
    # WA: the same unit means with no seed spread; all of its variance lies between units.
    assert plan["wa"]["sd_units"] == pytest.approx(4.0) and plan["wa"]["sd_within"] == 0.0
    assert plan["wa"]["sd_between"] == pytest.approx(4.0) and plan["wa"]["seed_share"] == 0.0
    assert plan["trial_seconds"] == pytest.approx(120.0)


def test_units_needed_iterates_from_the_normal_bound():
    assert precision.units_needed(4.0, 2.0) == 18 and precision.units_needed(4.0, 1.0) == 64
    assert precision.units_needed(0.0, 1.0) == 2  # no spread: the fewest units an interval has


def test_seeds_are_averaged_within_a_unit():
    """Two more seeds per unit with the same unit means (mean ± 3): still 10 units with the same
    SD and interval; only the seed part and the trials per unit change."""
    two, four = pairs_frame(), pairs_frame({0: 1.0, 1: -1.0, 2: 3.0, 3: -3.0})
    plan2, plan4 = (precision.plan(p, folds_per_draw=5, draws=True, trials_at_once=4) for p in (two, four))
    assert plan4["n_units"] == plan2["n_units"] == 10 and plan4["seeds_per_unit"] == 4.0
    for key in ("delta", "sd_units", "half_width"):
        assert plan4["ua"][key] == pytest.approx(plan2["ua"][key])
    assert plan4["ua"]["targets"]["2"]["units"] == 18
    assert plan4["ua"]["targets"]["2"]["more_trials"] == 10 * 4 * 2  # 10 more units × 4 seeds × 2 rows
    # Within: per unit (1 + 1 + 9 + 9) over 40 − 10 degrees of freedom = 200 / 30.
    assert plan4["ua"]["sd_within"] == pytest.approx((200 / 30) ** 0.5)
    # Pairs taken as independent would claim a narrower interval: the seeds are not more units.
    pooled = (four["ua"] - four["ua_ref"]).std(ddof=1) * 2.0227 / 40 ** 0.5  # t_{0.975, 39} = 2.0227
    assert pooled < plan4["ua"]["half_width"] - 1


def test_one_seed_per_unit_has_no_seed_part_and_a_fixed_corpus_has_no_more_folds():
    plan = precision.plan(pairs_frame({0: 0.0}), folds_per_draw=10, draws=False)
    ua = plan["ua"]
    assert plan["n_units"] == 10 and (ua["sd_within"], ua["sd_between"], ua["seed_share"]) == (None, None, None)
    assert ua["targets"]["2"] == {"units": 18, "draws": None, "reachable": False, "more_trials": None,
                                  "wall_seconds": None}
    assert plan["trials_at_once"] is None
    few = precision.plan(pairs_frame().head(4), folds_per_draw=5, draws=True)  # 2 units: no interval
    assert few["ua"]["half_width"] is None and few["ua"]["targets"] == {}


def test_trials_at_once_are_this_machines_cores_over_threads(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    here = socket.gethostname()
    assert precision.concurrency({here}, {"cpu"}, 2)["trials_at_once"] == 4
    assert precision.concurrency({here}, {"cpu"}, 16)["trials_at_once"] == 1
    for hosts, devices in (({"elsewhere"}, {"cpu"}), ({here, "elsewhere"}, {"cpu"}), ({here}, {"cuda"}),
                           ({None}, {None})):
        assert precision.concurrency(hosts, devices, 2)["trials_at_once"] is None
        # what a sweep recorded (sweep.json's last.slots) wins over any guess, on a cluster too
        assert precision.concurrency(hosts, devices, 2, recorded=3)["trials_at_once"] == 3


def write_sweep(folder, trial_seconds=(140.0, 100.0)):
    """A finished two-method sweep over 2 draws × 5 folds × 2 seeds with the hand-computed ΔUA, as
    `ser sweep` leaves it (sweep.json, fold records, trial.json), without training anything."""
    grid = grid_from_dict({"name": "plan", "corpus": "synth", "methods": ["paper", "soft-static"],
                           "grid": {"synth.seed": [0, 1]}, "draws": "synth.seed", "seeds": [0, 1], "folds": 5,
                           "threads": 2})
    speakers = ["A", "B", "C", "D", "E"]
    machine = {"cpu": "Test CPU", "cpu_capability": "AVX2", "cpu_bf16_flags": [], "torch": "2", "device": "cpu",
               "autocast": "fp32"}
    for run in grid.runs():
        draw = run.point["synth.seed"]
        for i, speaker in enumerate(speakers):
            mean, offset = UNIT_MEANS[(draw, speaker)], 1.0 if run.seed == 0 else -1.0
            paper = run.method == "paper"
            ua = 60.0 + 2 * i + 3 * draw + (mean + offset if paper else 0.0)
            wa = 55.0 + i + (mean if paper else 0.0)
            fold = runs.fold_dir(folder / run.name, speaker)
            fold.mkdir(parents=True)
            (fold / runs.FOLD_RESULT).write_text(json.dumps({"speaker": speaker, "wa": wa, "ua": ua, "macro_f1": ua,
                                                             "train_seconds": 1.0}))
            seconds = trial_seconds[0] if paper else trial_seconds[1]
            runs.write_trial_info(fold, {"hostname": socket.gethostname(), "device": "cpu", "machine": machine,
                                         "finished": True, **({"trial_seconds": seconds} if seconds else {})})
    (folder / SWEEP_JSON).write_text(json.dumps({
        "grid": grid.to_dict(), "manifest": "synth", "speakers": speakers,
        "runs": [{"run": r.name, "method": r.method, "point": r.point, "seed": r.seed} for r in grid.runs()]}))
    return folder


def test_the_report_has_the_precision_plan(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    sweep = write_sweep(tmp_path / "sweep")
    report = write_report(sweep, figures_dir=None)
    markdown = (sweep / "report.md").read_text()
    assert "## Precision plan" in markdown and PLAN_ROW in markdown
    assert "| paper vs soft-static |" not in markdown, "a comparison's mirror repeats its plan"
    assert "4 trials at once (8 cores of" in markdown and "whole corpus draws of 5 folds" in markdown
    saved = json.loads((sweep / "report.json").read_text())
    assert saved["concurrency"]["trials_at_once"] == 4
    plan = saved["precision"]["vs soft-static"]["paper"]
    assert plan["n_units"] == 10 and plan["ua"]["half_width"] == pytest.approx(2.8615, abs=1e-4)
    assert plan["ua"]["targets"]["1"]["units"] == 64 and plan["ua"]["targets"]["2"]["wall_seconds"] == 1200.0
    mirror = saved["precision"]["vs paper"]["soft-static"]["ua"]
    assert mirror["delta"] == pytest.approx(-1.0) and mirror["sd_units"] == pytest.approx(4.0)
    # The paired sections keep their numbers: 20 (draw, fold, seed) pairs, mean Δ 1.
    paired = saved["paired"]["vs soft-static"]["paper"]
    assert paired["n_pairs"] == 20 and paired["delta_ua"] == pytest.approx(1.0) and "precision" not in paired
    assert report.summary["precision"] == saved["precision"]


def test_a_sweep_without_trial_seconds_says_not_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    state, frame = collect(write_sweep(tmp_path / "sweep", trial_seconds=(None, None)))
    concurrency, plans = precision_plans(state, frame)
    assert {s.title: s.rows for s in plans}["vs soft-static"]["paper"]["ua"]["targets"]["2"]["wall_seconds"] is None
    markdown = format_report(SweepSummary(state["grid"], note="n", concurrency=concurrency, precision=plans))
    assert "| 18 / 64 | 4 / 13 | not recorded / not recorded |" in markdown
    assert "did not record trial_seconds" in markdown


def test_the_report_lists_the_code_versions_behind_its_folds(tmp_path, monkeypatch):
    """Two code versions (`runtime.code_version` in trial.json) are listed with their folds; folds
    from before the version was recorded count as such."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    sweep = write_sweep(tmp_path / "sweep")
    trials = sorted(sweep.glob("*/*/seed-*/fold-*/trial.json"))
    for i, path in enumerate(trials):
        trial = json.loads(path.read_text())
        if i % 4:  # one fold in four keeps no version
            trial["code"] = "0123456789ab" if i < len(trials) // 2 else "ba9876543210-dirty"
        path.write_text(json.dumps(trial))
    write_report(sweep, figures_dir=None)
    line = next(l for l in (sweep / "report.md").read_text().splitlines() if l.startswith("Code (folds"))
    counts = {version: sum(1 for i in range(len(trials)) if i % 4 and (i < len(trials) // 2) == (version == "0123456789ab"))
              for version in ("0123456789ab", "ba9876543210-dirty")}
    for version, count in counts.items():
        assert f"{count} with {version}" in line
    assert f"{len(trials) // 4} with no recorded version" in line
    assert json.loads((sweep / "report.json").read_text())["code"]["0123456789ab"] == counts["0123456789ab"]
