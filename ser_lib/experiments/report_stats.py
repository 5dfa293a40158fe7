"""The statistics of `ser report` (`report.py`): one row per finished fold of a sweep, a summary per
(method, grid point), the paired differences against each reference, the Δ along a noise level,
the paper's column and the precision plans, gathered into a `SweepSummary`.

Rows and grid points are labelled once, in `collect` (`grid.point_label`, `grid.row_label`); every
later step reads the labels, and the grid values behind them, from the frame and the records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import runs
from ..analysis.metrics import aggregate, paired_difference, reportable_interval
from ..analysis.paper_numbers import paper_value
from ..config import flatten, load_config
from ..errors import SerError
from ..method.presets import apply_preset
from ..model.encoder import CORPUS_FREE, most_marked
from . import precision
from .grid import PaperRows, grid_from_dict, point_label, row_label
from .sweep import SWEEP_JSON

METRICS = (("wa", "WA"), ("ua", "UA"), ("macro_f1", "macro-F1"))
JS_COLUMNS = (("js_corrected_to_true", "js_train_to_true"), ("js_pred_to_true", "js_pred_to_true"))
REFERENCES = ("paper", "soft-static")
ALONG_REFERENCE = "soft-static"  # what the Δ along a noise level compares every method with
NOT_RECORDED = "not recorded (trained before trial.json held the machine)"
CODE_NOT_RECORDED = "no recorded version (trained before trial.json held it)"
DEPENDENCE_NOTE = ("Intervals and p-values treat every fold × seed as one observation. The seeds of one fold share "
                   "their test speakers, so these are somewhat optimistic; the per-fold points in the figures show "
                   "the spread behind each mean.")
DRAWS_NOTE = ("The corpus draw ({key}) is a level of variation, not a row: each Δ pairs a row with its reference "
              "on the same draw, fold and seed, and its t-interval and Wilcoxon test run over those (draw, fold, "
              "seed) pairs, so a result must hold across draws to be significant. The pairs of one draw share a "
              "corpus and those of one fold their test speakers, so the intervals are somewhat optimistic; the Δ on "
              "each draw is listed beside the pooled one.")


# ----------------------------------------------------------------------------- records


@dataclass
class Score:
    """One metric of a row over its folds × seeds: mean, std and 95% t-interval (None below 3 runs)."""
    mean: float
    std: float
    ci: list[float] | None


@dataclass
class RowSummary:
    """A row of the results table: one method at one grid point, over its (draws ×) folds × seeds."""
    label: str  # `paper [loss.beta=0.1]`: the row's name in every table and figure
    method: str
    point: dict  # the row's grid values, without the corpus draw
    n_runs: int
    n_folds: int
    n_seeds: int
    n_draws: int
    scores: dict[str, Score]  # per METRICS key
    js_train_to_true: float | None = None  # None where no fold recorded it (corpora without a known truth)
    js_pred_to_true: float | None = None
    seconds_per_fold: float | None = None
    encoder_audio: str = CORPUS_FREE  # the most marked of its folds' (`model.encoder.encoder_audio`)

    def value(self, metric: str) -> float:
        """The row's mean of a metric or a JS column; NaN where not recorded."""
        value = self.scores[metric].mean if metric in self.scores else getattr(self, metric)
        return np.nan if value is None else value

    def to_json(self) -> dict:
        entry = {"method": self.method, "point": point_label(self.point), "n_runs": self.n_runs,
                 "n_folds": self.n_folds, "n_seeds": self.n_seeds, "n_draws": self.n_draws,
                 "encoder_audio": self.encoder_audio}
        for key, score in self.scores.items():
            entry[key], entry[f"{key}_std"], entry[f"{key}_ci"] = score.mean, score.std, score.ci
        optional = {"js_train_to_true": self.js_train_to_true, "js_pred_to_true": self.js_pred_to_true,
                    "seconds_per_fold": self.seconds_per_fold}
        return entry | {key: value for key, value in optional.items() if value is not None}


@dataclass
class Comparison:
    """A section of paired differences: every other row against one reference, on the same (draw,)
    fold and seed. `kind` is what the reference is: a method at the same grid point ("method"), the
    method's own setting in a one-method grid ("own-setting"), or the first value of the grid's
    `contrast` key at the same other values ("contrast")."""
    kind: str
    reference: str  # `paper`, `paper [loss.alpha=0.3, loss.beta=0.1]` or `model.encoder=tiny`
    rows: dict[str, dict]  # row label -> its Δ (`paired_against`) or precision plan (`precision.plan`)
    unreached: list[str] = field(default_factory=list)  # methods left out of a contrast (`setting_blind_methods`)

    @property
    def title(self) -> str:
        """The section's heading (after "Paired differences") and its key in report.json."""
        return f"vs {self.reference}" + (" at the same other settings" if self.kind == "contrast" else "")

    @property
    def figure(self) -> str:
        """What names the section's figure, `{grid}_paired_{figure}.png`."""
        return self.reference if self.kind == "method" else self.kind


@dataclass
class PlanRow:
    """A row of the precision plan: one comparison, `paper vs soft-static`, and its `precision.plan`."""
    comparison: str
    plan: dict


@dataclass
class SweepSummary:
    """Everything the report says about a sweep: `to_json` is report.json, and the Markdown and the
    figures are drawn from it."""
    grid: dict  # the sweep's grid, as sweep.json holds it
    sweep: str = ""
    rows: list[RowSummary] = field(default_factory=list)
    paired: list[Comparison] = field(default_factory=list)
    expected_folds: int = 0
    trials: dict | None = None  # finished trials and those in the grid
    note: str = ""
    machines: dict[str, int] = field(default_factory=dict)  # machine label -> folds trained on it
    code: dict[str, int] = field(default_factory=dict)  # code version (`runtime.code_version`) -> folds
    along: dict | None = None  # `along_level`
    paper: dict | None = None  # `paper_column`
    concurrency: dict | None = None  # `precision.concurrency`
    precision: list[Comparison] = field(default_factory=list)  # the sections of `paired`, with plans as rows

    def to_json(self) -> dict:
        out = {"grid": self.grid["name"], "description": self.grid.get("description", ""), "sweep": self.sweep,
               "methods": {row.label: row.to_json() for row in self.rows},
               "paired": {section.title: section.rows for section in self.paired},
               "unreached": {section.title: section.unreached for section in self.paired if section.unreached},
               "expected_folds": self.expected_folds, "trials": self.trials, "note": self.note,
               "machines": self.machines, "code": self.code}
        if self.along is not None:
            out["along"] = self.along
        if self.paper is not None:
            out["paper"] = self.paper
        out["concurrency"] = self.concurrency
        out["precision"] = {section.title: section.rows for section in self.precision}
        return out


# ----------------------------------------------------------------------------- fold rows


def collect(sweep_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """The sweep's state (sweep.json) and one row per finished fold of its runs."""
    sweep_dir = Path(sweep_dir)
    state_path = sweep_dir / SWEEP_JSON
    if not state_path.exists():
        raise SerError(f"{sweep_dir} is not a sweep folder (no {SWEEP_JSON}); run `ser sweep --out {sweep_dir}` first")
    state = json.loads(state_path.read_text())
    rows = [_fold_row(run, fold, state["grid"])
            for run in state["runs"] for fold in runs.fold_dirs(sweep_dir / run["run"])]
    if not rows:
        raise SerError(f"{sweep_dir}: no finished folds yet; `ser sweep --resume` trains them")
    return state, pd.DataFrame(rows)


def _fold_row(run: dict, fold: Path, grid: dict) -> dict:
    """One finished fold: its run and grid point, scores, JS to the truth, timings and machine."""
    record, trial = runs.read_fold_record(fold), runs.read_trial_info(fold) or {}
    shown = shown_point(run["point"], grid)
    row = {"run": run["run"], "method": run["method"], "point": point_label(shown),
           "draw": run["point"].get(grid.get("draws"), 0), "seed": run["seed"], "speaker": record["speaker"],
           **run["point"]}
    row.update({key: record.get(key) for key, _ in METRICS})
    row.update({name: record.get(key) for key, name in JS_COLUMNS})
    row.update(train_seconds=record.get("train_seconds"), machine=machine_label(trial),
               code=trial.get("code") or CODE_NOT_RECORDED,
               trial_seconds=trial.get("trial_seconds"), host=trial.get("hostname"), device=trial.get("device"),
               encoder_audio=record.get("encoder_audio"))
    row.update(row=row_label(run["method"], shown), point_values=shown)
    return row


def shown_keys(grid: dict) -> list[str]:
    """The grid keys that make rows: all but the corpus draws, which are paired over."""
    return [key for key in grid.get("grid", {}) if key != grid.get("draws")]


def shown_point(point: dict, grid: dict) -> dict:
    """A run's grid point without its corpus draw: what its row is labelled by."""
    return {key: value for key, value in point.items() if key != grid.get("draws")}


def machine_label(trial: dict | None) -> str:
    """One line for the machine a fold was trained on (`runtime.describe_machine` in trial.json):
    numbers from CPUs with other bf16 kernels differ, so a report says where its numbers came from."""
    machine = (trial or {}).get("machine")
    if not machine:
        return NOT_RECORDED
    where = machine.get("gpu") or machine["cpu"]
    flags = ", ".join(machine.get("cpu_bf16_flags", [])) or "no bf16 flags"
    return f"{where} ({machine['cpu_capability']}; {flags}), autocast {machine['autocast']}, torch {machine['torch']}"


# ----------------------------------------------------------------------------- rows


def summarize(frame: pd.DataFrame) -> list[RowSummary]:
    """Per row (method, point): mean, std and 95% CI of each metric over folds × seeds."""
    return [_row_summary(label, group) for label, group in frame.groupby("row", sort=False)]


def _row_summary(label: str, group: pd.DataFrame) -> RowSummary:
    js = {name: group[name].dropna() for _, name in JS_COLUMNS}
    seconds = group["train_seconds"].dropna()
    return RowSummary(label=label, method=group["method"].iloc[0], point=group["point_values"].iloc[0],
                      n_runs=len(group), n_folds=int(group["speaker"].nunique()),
                      n_seeds=int(group["seed"].nunique()), n_draws=int(group["draw"].nunique()),
                      scores={key: _score(group[key].dropna()) for key, _ in METRICS},
                      seconds_per_fold=float(seconds.mean()) if len(seconds) else None,
                      encoder_audio=most_marked(group["encoder_audio"]),
                      **{name: float(values.mean()) for name, values in js.items() if len(values)})


def _score(values: pd.Series) -> Score:
    stat = aggregate(values)
    return Score(stat["mean"], stat["std"], reportable_interval(stat))  # no interval below 3 runs; in [0, 100]


def grid_matrix(rows: list[RowSummary], keys: list[str], metric: str) -> pd.DataFrame:
    """`metric` over a two-key grid: the values of keys[0] as rows, those of keys[1] as columns
    (the mean over methods where a grid has several)."""
    cells = [{keys[0]: row.point[keys[0]], keys[1]: row.point[keys[1]], metric: row.value(metric)} for row in rows]
    return pd.DataFrame(cells).pivot_table(index=keys[0], columns=keys[1], values=metric, aggfunc="mean")


def paper_column(paper: dict, rows: list[RowSummary]) -> dict:
    """The paper's values beside the results (a grid's `paper:`, `grid.PaperRows`): its table,
    column and, per report row it maps, the paper's row and value."""
    mapping, column = PaperRows.from_dict(paper), {}
    for row in rows:
        if (paper_row := mapping.row(row.method, row.point)) is not None:
            column[row.label] = {"paper_row": paper_row, "value": paper_value(mapping.table, paper_row, mapping.column)}
    return {"table": mapping.table, "column": mapping.column, "rows": column}


# ----------------------------------------------------------------------------- paired differences


def paired_against(frame: pd.DataFrame, reference: str, by: str = "method", summarize=None) -> dict[str, dict]:
    """Every other row minus the reference rows, paired on (fold, seed). `by="method"`: methods
    against method `reference` at the same grid point; `by="point"`: the grid points of one
    method against point `reference` (Tables VII and VIII against the paper's own setting).
    `summarize`: what `_paired` makes of each row's matched folds."""
    keys = ["point" if by == "method" else "method", *_unit_keys(frame)]
    return _paired(frame[frame[by] != reference], frame[frame[by] == reference], keys, summarize)


def paired_along(frame: pd.DataFrame, key: str, reference, other_keys: list[str], summarize=None) -> dict[str, dict]:
    """Rows whose grid key `key` is not `reference` minus the row where it is, at the same method,
    other grid values (`other_keys`), fold and seed: a grid's `contrast`, e.g. each variant with
    the pretrained encoder against the same variant with the random one."""
    is_reference = frame[key].astype(str) == str(reference)
    return _paired(frame[~is_reference], frame[is_reference], ["method", *other_keys, *_unit_keys(frame)], summarize)


def setting_blind_methods(frame: pd.DataFrame, key: str, other_keys: list[str]) -> list[str]:
    """The methods whose every fold and seed scored the same at each value of grid key `key`: the
    setting does not reach them (`smile-svm` and `model.encoder`), so their contrast is Δ = 0 by
    construction and is left out of the contrast rather than printed as a result."""
    metrics = [metric for metric, _ in METRICS]
    blind = []
    for method, group in frame.groupby("method", sort=False):
        if group[key].astype(str).nunique() < 2:
            continue
        values_per_unit = group.groupby([*other_keys, *_unit_keys(frame)])[metrics].nunique(dropna=False)
        if (values_per_unit <= 1).all(axis=None):
            blind.append(method)
    return blind


def _unit_keys(frame: pd.DataFrame) -> list[str]:
    """What makes two rows one observation: the corpus draw (when the sweep has draws), the training
    seed and the fold."""
    return [key for key in ("draw", "seed", "speaker") if key in frame]


def _paired(rows: pd.DataFrame, reference: pd.DataFrame, keys: list[str], summarize=None) -> dict[str, dict]:
    """Per row label of `rows`: its metrics minus those of the `reference` row matching it on `keys`
    (`_differences`), or what `summarize` makes of the matched folds (the reference's columns end
    in `_ref`; `precision.plan`)."""
    columns = [k for k, _ in METRICS] + ["trial_seconds"] * ("trial_seconds" in reference)
    reference_values = reference.set_index(keys)[columns].add_suffix("_ref")
    out = {}
    for label, group in rows.groupby("row", sort=False):
        matched = group.join(reference_values, on=keys, how="inner")
        if not matched.empty:
            out[label] = (summarize or _differences)(matched)
    return out


def _differences(matched: pd.DataFrame) -> dict:
    """A row's paired Δ against its reference: mean, t-interval and Wilcoxon p per metric."""
    entry = {"n_pairs": len(matched)}
    for key, _ in METRICS:
        d = paired_difference(matched[key], matched[f"{key}_ref"])
        entry[f"delta_{key}"], entry[f"delta_{key}_ci"], entry[f"p_{key}"] = d["delta"], d["ci95"], d["p_value"]
    if "draw" in matched and matched["draw"].nunique() > 1:  # does the sign hold on every corpus draw?
        per_draw = (matched["ua"] - matched["ua_ref"]).groupby(matched["draw"], sort=True).mean()
        entry["delta_ua_by_draw"] = {str(draw): float(delta) for draw, delta in per_draw.items()}
    return entry


def reference_point(state: dict, frame: pd.DataFrame) -> str | None:
    """For a sweep of one method over a grid: the point at the method's own setting (for `paper`:
    α = 0.3, β = 0.1, the full model), else the first point. None for other sweeps."""
    if frame["method"].nunique() != 1 or frame["point"].nunique() < 2:
        return None
    grid = grid_from_dict(state["grid"])
    own = flatten(apply_preset(load_config(grid.profile, overrides=grid.set), grid.methods[0]).to_dict())
    for run in state["runs"]:
        point = shown_point(run["point"], state["grid"])  # the corpus draw is paired over, whatever its value
        if all(own.get(key) == value for key, value in point.items()):
            return point_label(point)
    return frame["point"].iloc[0]


def comparisons(state: dict, frame: pd.DataFrame, summarize=None) -> list[Comparison]:
    """The paired sections: against `paper` and `soft-static` (else the first method), for a
    one-method grid against its own setting, and against the first value of the grid's `contrast`.
    Sections without a pair are left out. `summarize`: as for `_paired`."""
    found = [Comparison("method", r, paired_against(frame, r, summarize=summarize)) for r in _references(frame)]
    point = reference_point(state, frame)
    own_rows = frame.loc[frame["point"] == point, "row"]  # none without a reference point
    if not own_rows.empty:
        found.append(Comparison("own-setting", own_rows.iloc[0], paired_against(frame, point, "point", summarize)))
    contrast, values = state["grid"].get("contrast"), state["grid"]["grid"]
    if contrast is not None:
        first, others = values[contrast][0], [k for k in values if k != contrast]
        blind = setting_blind_methods(frame, contrast, others)
        rows = paired_along(frame[~frame["method"].isin(blind)], contrast, first, others, summarize)
        if rows not in [section.rows for section in found]:  # a one-key grid whose first value is the own setting
            found.append(Comparison("contrast", point_label({contrast: first}), rows, blind))
    return [section for section in found if section.rows]


def _references(frame: pd.DataFrame) -> list[str]:
    """`paper` and `soft-static` when the sweep has them, else its first method."""
    present = [r for r in REFERENCES if (frame["method"] == r).any()]
    return present or [frame["method"].iloc[0]]


# ----------------------------------------------------------------------------- precision plans


def precision_plans(state: dict, frame: pd.DataFrame) -> tuple[dict, list[Comparison]]:
    """The sweep's trials at once (`precision.concurrency`) and the paired sections with, per row,
    the precision plan of its Δ over (draw, fold) units (`precision.plan`)."""
    grid = state["grid"]
    at_once = precision.concurrency(set(frame["host"]), set(frame["device"]), int(grid.get("threads", 1)),
                                    state.get("last", {}).get("slots"))
    folds = len(state.get("speakers", [])) or frame["speaker"].nunique()
    plan = partial(precision.plan, folds_per_draw=folds, draws=bool(grid.get("draws")),
                   trials_at_once=at_once["trials_at_once"])
    return at_once, comparisons(state, frame, plan)


def plan_rows(plans: list[Comparison]) -> list[PlanRow]:
    """A row per comparison, dropping "B vs A" after "A vs B": a Δ and its mirror have the same SD,
    interval width and plan."""
    seen, kept = set(), []
    for section in plans:
        for label, plan in section.rows.items():
            pair = frozenset((label, section.reference))
            if pair not in seen:
                seen.add(pair)
                kept.append(PlanRow(f"{label} {section.title}", plan))
    return kept


# ----------------------------------------------------------------------------- along a noise level


def along_level(frame: pd.DataFrame, paired: list[Comparison], grid: dict) -> dict | None:
    """Along the grid's `along` key (e.g. a noise level), with `soft-static` in the sweep: per method
    and level, Δ against `soft-static` (from its paired section) and the JS of the final training
    labels to the truth with its interval, and the levels between which a mean Δ changes sign.
    None for other grids. Other grid keys besides the draws would mix into one level, so the grid
    may have none."""
    key = grid.get("along")
    against = next((s.rows for s in paired if s.kind == "method" and s.reference == ALONG_REFERENCE), None)
    if key is None or not against:
        return None
    if shown_keys(grid) != [key]:
        raise SerError(f"grid {grid['name']!r}: along {key!r} needs a grid of that key alone (besides the draws), "
                       f"not {shown_keys(grid)}")
    levels = sorted(frame[key].unique())
    labels = frame.groupby(["method", key])["row"].first()
    delta, js = {}, {}
    for method in dict.fromkeys(frame["method"]):
        for level in levels:
            label = labels.get((method, level))
            if label in against:
                delta.setdefault(method, {})[str(level)] = {k: against[label][k] for k in
                                                           ("delta_ua", "delta_ua_ci", "p_ua", "n_pairs")}
            values = frame.loc[frame["row"] == label, "js_train_to_true"].dropna() if label else []
            if len(values):
                stat = aggregate(values)
                js.setdefault(method, {})[str(level)] = {"mean": stat["mean"],
                                                         "ci": reportable_interval(stat, (0.0, 1.0))}
    turns = {method: _sign_turns(levels, [by_level.get(str(level), {}).get("delta_ua") for level in levels])
             for method, by_level in delta.items()}
    return {"key": key, "levels": [float(level) for level in levels], "reference": ALONG_REFERENCE,
            "delta_ua": delta, "js_train_to_true": js, "sign_turns": {m: t for m, t in turns.items() if t}}


def _sign_turns(levels: list, deltas: list) -> list[list[float]]:
    """[low, high] for every pair of neighbouring levels whose mean Δ have opposite signs."""
    return [[float(lo), float(hi)] for lo, hi, a, b in zip(levels, levels[1:], deltas, deltas[1:])
            if a is not None and b is not None and a * b < 0]


# ----------------------------------------------------------------------------- the whole sweep


def summarize_sweep(sweep_dir: str | Path, state: dict, frame: pd.DataFrame) -> SweepSummary:
    """The statistics of a report: rows, paired sections, the level along a noise key, the paper's
    column and the precision plans."""
    grid, speakers = state["grid"], state.get("speakers", [])
    rows, paired = summarize(frame), comparisons(state, frame)
    concurrency, plans = precision_plans(state, frame)
    return SweepSummary(
        grid=grid, sweep=str(sweep_dir), rows=rows, paired=paired, expected_folds=len(speakers),
        trials={"finished": len(frame), "in_grid": len(state["runs"]) * len(speakers)},
        note=DRAWS_NOTE.format(key=grid["draws"]) if grid.get("draws") else DEPENDENCE_NOTE,
        machines=frame["machine"].value_counts().to_dict(), code=frame["code"].value_counts().to_dict(), along=along_level(frame, paired, grid),
        paper=paper_column(grid["paper"], rows) if grid.get("paper") else None,
        concurrency=concurrency, precision=plans)
