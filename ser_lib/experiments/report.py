"""`ser report SWEEP`: tables, paired statistics and figures over a sweep folder.

Each row of the report is one (method, grid point), measured over all its finished folds ×
seeds: WA, UA and macro-F1 as mean ± std with a 95% Student-t interval, and on corpora with
known true distributions the JS divergence to the truth of the final training labels of the
ambiguous samples (`js_train_to_true`) and of the predictions on them (`js_pred_to_true`).

Differences are paired: a row's fold f, seed s is compared with the reference method's fold f,
seed s at the same grid point (`metrics.paired_difference`: mean, t-interval, Wilcoxon p). The
references are `paper` and `soft-static` when the sweep has them. A sweep of one method over a
grid (Tables VII, VIII) pairs every point with the method's own setting (`reference_point`).

A grid whose `draws` key names corpus draws (`ser synth` seeds, `grids/annotator-noise.yaml`)
does not get a row per draw: the draw becomes a level of variation like the training seed, and
every difference is paired over (draw, fold, seed), with its mean on each draw beside it, so a
sign that holds on one corpus draw only shows. A grid's `along` key (a noise level) makes the
report draw each method's Δ against `soft-static`, and the JS of the training labels to the
truth, along that key, and mark where a Δ's sign turns.

The tables follow the grid: a method grid is laid out like Tables III and IX (a row per method),
a one-key grid like Table VII (a row per value), a two-key grid also as a matrix like Table VIII.
A grid that names the paper's table it reproduces (`paper:`, `grid.PaperRows`) gets the paper's
value beside each row it maps, read from `analysis/paper_numbers.csv`.
Figures (seaborn): per-fold points with the mean and its interval per row, the paired
differences with their intervals, a heatmap for two-key grids, and Fig. 6 (t-SNE of the four
loss settings) when the sweep has them. Everything is written into the sweep folder
(`report.md`, `report.json`, `figures/`) and the figures also into `figures/` of the project.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..analysis import runs
from ..analysis.metrics import MIN_PAIRS_FOR_CI, aggregate, paired_difference, reportable_interval
from ..analysis.paper_numbers import paper_value
from ..analysis.results import markdown_table
from ..config import flatten, load_config
from ..errors import SerError
from ..files import atomic_write_json, atomic_write_text
from ..method.presets import FIG6_PRESETS, PRESETS, apply_preset
from . import precision
from .grid import DEFAULT_POINT, PaperRows, grid_from_dict
from .sweep import SWEEP_JSON

METRICS = (("wa", "WA"), ("ua", "UA"), ("macro_f1", "macro-F1"))
JS_COLUMNS = (("js_corrected_to_true", "js_train_to_true"), ("js_pred_to_true", "js_pred_to_true"))
REFERENCES = ("paper", "soft-static")
NOT_RECORDED = "not recorded (trained before trial.json held the machine)"
DEPENDENCE_NOTE = ("Intervals and p-values treat every fold × seed as one observation. The seeds of one fold share "
                   "their test speakers, so these are somewhat optimistic; the per-fold points in the figures show "
                   "the spread behind each mean.")
DRAWS_NOTE = ("The corpus draw ({key}) is a level of variation, not a row: each Δ pairs a row with its reference "
              "on the same draw, fold and seed, and its t-interval and Wilcoxon test run over those (draw, fold, "
              "seed) pairs, so a result must hold across draws to be significant. The pairs of one draw share a "
              "corpus and those of one fold their test speakers, so the intervals are somewhat optimistic; the Δ on "
              "each draw is listed beside the pooled one.")
ALONG_REFERENCE = "soft-static"  # what the figure along a noise level compares every method with
PAPER_SETUP = "IEMOCAP with wav2vec2-base-960h, a 94.4 M-parameter encoder"  # where the paper's numbers come from


@dataclass
class Report:
    summary: dict  # what `ser report --json` prints
    markdown: str
    paths: list[Path] = field(default_factory=list)


def collect(sweep_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """The sweep's state (sweep.json) and one row per finished fold of its runs."""
    sweep_dir = Path(sweep_dir)
    state_path = sweep_dir / SWEEP_JSON
    if not state_path.exists():
        raise SerError(f"{sweep_dir} is not a sweep folder (no {SWEEP_JSON}); run `ser sweep --out {sweep_dir}` first")
    state = json.loads(state_path.read_text())
    draws = state["grid"].get("draws")
    rows = []
    for run in state["runs"]:
        shown = {key: value for key, value in run["point"].items() if key != draws}
        for fold in runs.fold_dirs(sweep_dir / run["run"]):
            record = runs.read_fold_record(fold)
            row = {"run": run["run"], "method": run["method"], "point": _point_label(shown),
                   "draw": run["point"].get(draws, 0), "seed": run["seed"], "speaker": record["speaker"],
                   **run["point"]}
            row.update({key: record.get(key) for key, _ in METRICS})
            row.update({name: record.get(key) for key, name in JS_COLUMNS})
            row["train_seconds"] = record.get("train_seconds")
            trial = runs.read_trial_info(fold) or {}
            row["machine"] = machine_label(trial)
            row.update(trial_seconds=trial.get("trial_seconds"), host=trial.get("hostname"), device=trial.get("device"))
            rows.append(row)
    if not rows:
        raise SerError(f"{sweep_dir}: no finished folds yet; `ser sweep --resume` trains them")
    frame = pd.DataFrame(rows)
    frame["row"] = [_row_label(m, p) for m, p in zip(frame["method"], frame["point"])]
    return state, frame


def machine_label(trial: dict | None) -> str:
    """One line for the machine a fold was trained on (`runtime.describe_machine` in trial.json):
    numbers from CPUs with other bf16 kernels differ, so a report says where its numbers came from."""
    machine = (trial or {}).get("machine")
    if not machine:
        return NOT_RECORDED
    where = machine.get("gpu") or machine["cpu"]
    flags = ", ".join(machine.get("cpu_bf16_flags", [])) or "no bf16 flags"
    return f"{where} ({machine['cpu_capability']}; {flags}), autocast {machine['autocast']}, torch {machine['torch']}"


def summarize(frame: pd.DataFrame) -> dict[str, dict]:
    """Per row (method, point): mean, std and 95% CI of each metric over folds × seeds."""
    summary = {}
    for label, group in frame.groupby("row", sort=False):
        entry = {"method": group["method"].iloc[0], "point": group["point"].iloc[0], "n_runs": len(group),
                 "n_folds": int(group["speaker"].nunique()), "n_seeds": int(group["seed"].nunique()),
                 "n_draws": int(group["draw"].nunique()) if "draw" in group else 1}
        for key, _ in METRICS:
            values = group[key].dropna()
            stat = aggregate(values)
            entry[key], entry[f"{key}_std"] = stat["mean"], stat["std"]
            entry[f"{key}_ci"] = reportable_interval(stat)  # none below 3 runs; clipped to [0, 100]
        for _, name in JS_COLUMNS + (("train_seconds", "seconds_per_fold"),):
            values = group[name if name != "seconds_per_fold" else "train_seconds"].dropna()
            if len(values):
                entry[name] = float(values.mean())
        summary[label] = entry
    return summary


CONTRAST_SECTION = "at the same other settings"  # ends the title of a grid's contrast section


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
        if all(own.get(key) == value for key, value in run["point"].items()):
            return _point_label(run["point"])
    return frame["point"].iloc[0]


def _paired_sections(state: dict, frame: pd.DataFrame, summarize=None) -> dict[str, dict]:
    """Section title -> paired rows: against `paper` and `soft-static` (else the first method), and
    for a one-method grid against its own setting. `summarize`: as for `_paired`."""
    sections = {f"vs {r}": paired_against(frame, r, summarize=summarize) for r in _references(frame)}
    if (point := reference_point(state, frame)) is not None:
        sections[f"vs {_row_label(frame['method'].iloc[0], point)}"] = paired_against(frame, point, "point", summarize)
    contrast, values = state["grid"].get("contrast"), state["grid"]["grid"]
    if contrast is not None:
        others = [k for k in values if k != contrast]
        rows = paired_along(frame, contrast, values[contrast][0], others, summarize)
        if rows not in sections.values():  # a one-key grid whose first value is the method's own setting
            sections[f"vs {contrast}={values[contrast][0]} {CONTRAST_SECTION}"] = rows
    return {title: rows for title, rows in sections.items() if rows}


def write_report(sweep_dir: str | Path, figures_dir: str | Path | None = "figures") -> Report:
    sweep_dir = Path(sweep_dir)
    state, frame = collect(sweep_dir)
    grid = state["grid"]
    draws = grid.get("draws")
    summary = {"grid": grid["name"], "description": grid.get("description", ""), "sweep": str(sweep_dir),
               "methods": summarize(frame),
               "paired": _paired_sections(state, frame),
               "expected_folds": len(state.get("speakers", [])),
               "trials": {"finished": len(frame), "in_grid": len(state["runs"]) * len(state.get("speakers", []))},
               "note": DRAWS_NOTE.format(key=draws) if draws else DEPENDENCE_NOTE,
               "machines": frame["machine"].value_counts().to_dict()}
    if (along := along_level(frame, summary, grid)) is not None:
        summary["along"] = along
    if grid.get("paper"):
        summary["paper"] = paper_column(grid["paper"], summary["methods"])
    summary["concurrency"], summary["precision"] = precision_plans(state, frame)
    paths = _write_figures(sweep_dir, frame, summary, grid)
    markdown = format_report(summary, grid, [p.name for p in paths])
    atomic_write_text(sweep_dir / "report.md", markdown)
    atomic_write_json(sweep_dir / "report.json", summary)
    paths = [sweep_dir / "report.md", sweep_dir / "report.json", *paths]
    if figures_dir is not None:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        for path in [p for p in paths if p.suffix == ".png"]:
            shutil.copyfile(path, Path(figures_dir) / path.name)
        shutil.copyfile(sweep_dir / "report.md", Path(figures_dir) / f"{grid['name']}_report.md")
    return Report(summary, markdown, paths)


def precision_plans(state: dict, frame: pd.DataFrame) -> tuple[dict, dict]:
    """The sweep's trials at once (`precision.concurrency`) and, per paired section and row, the
    precision plan of its Δ over (draw, fold) units (`precision.plan`)."""
    grid = state["grid"]
    at_once = precision.concurrency(set(frame["host"]), set(frame["device"]), int(grid.get("threads", 1)),
                                    state.get("last", {}).get("slots"))
    folds = len(state.get("speakers", [])) or frame["speaker"].nunique()
    plan = partial(precision.plan, folds_per_draw=folds, draws=bool(grid.get("draws")),
                   trials_at_once=at_once["trials_at_once"])
    return at_once, _paired_sections(state, frame, plan)


def along_level(frame: pd.DataFrame, summary: dict, grid: dict) -> dict | None:
    """Along the grid's `along` key (e.g. a noise level), with `soft-static` in the sweep: per method
    and level, Δ against `soft-static` (from the paired section) and the JS of the final training
    labels to the truth with its interval, and the levels between which a mean Δ changes sign.
    None for other grids. Other grid keys besides the draws would mix into one level, so the grid
    may have none."""
    key, paired = grid.get("along"), summary["paired"].get(f"vs {ALONG_REFERENCE}")
    if key is None or not paired:
        return None
    if _shown_keys(grid) != [key]:
        raise SerError(f"grid {grid['name']!r}: along {key!r} needs a grid of that key alone (besides the draws), "
                       f"not {_shown_keys(grid)}")
    levels = sorted(frame[key].unique())
    labels = frame.groupby(["method", key])["row"].first()
    methods = list(dict.fromkeys(frame["method"]))
    delta, js = {}, {}
    for method in methods:
        for level in levels:
            label = labels.get((method, level))
            if label in paired:
                delta.setdefault(method, {})[str(level)] = {k: paired[label][k] for k in
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


def paper_column(paper: dict, methods: dict) -> dict:
    """The paper's values beside the results (a grid's `paper:`, `grid.PaperRows`): its table,
    column and, per report row it maps, the paper's row and value."""
    rows, column = PaperRows.from_dict(paper), {}
    for label, entry in methods.items():
        if (row := rows.row(entry["method"], _parse_point(entry["point"]))) is not None:
            column[label] = {"paper_row": row, "value": paper_value(rows.table, row, rows.column)}
    return {"table": rows.table, "column": rows.column, "rows": column}


def _sign_turns(levels: list, deltas: list) -> list[list[float]]:
    """[low, high] for every pair of neighbouring levels whose mean Δ have opposite signs."""
    return [[float(lo), float(hi)] for lo, hi, a, b in zip(levels, levels[1:], deltas, deltas[1:])
            if a is not None and b is not None and a * b < 0]


def _references(frame: pd.DataFrame) -> list[str]:
    """`paper` and `soft-static` when the sweep has them, else its first method."""
    present = [r for r in REFERENCES if (frame["method"] == r).any()]
    return present or [frame["method"].iloc[0]]


# ----------------------------------------------------------------------------- Markdown


def format_report(summary: dict, grid: dict, figure_names: list[str]) -> str:
    lines = [f"# {summary['grid']}", ""]
    if summary["description"]:
        lines += [summary["description"], ""]
    trials = summary.get("trials")
    if trials and trials["finished"] < trials["in_grid"]:
        lines += [f"**Incomplete:** {trials['finished']} of the grid's {trials['in_grid']} trials have finished; "
                  f"`ser sweep --resume` trains the rest.", ""]
    lines += _results_table(summary)
    keys = _shown_keys(grid)
    if len(keys) == 2:
        lines += ["", f"## UA (%) by {keys[0]} (rows) and {keys[1]} (columns)", ""]
        lines += _matrix_table(summary, keys)
    if "along" in summary:
        lines += _along_tables(summary["along"])
    pairs = "same draw, fold and seed" if grid.get("draws") else "same fold and seed"
    for name, rows in summary["paired"].items():
        lines += ["", f"## Paired differences {name} ({pairs})", "",
                  "Each Δ is the row's score minus the reference's: positive means the row scored higher.", ""]
        lines += _paired_table(rows)
    lines += ["", summary["note"]]
    if summary.get("precision"):
        lines += _precision_section(summary["precision"], summary["concurrency"], grid)
    if summary.get("machines"):
        lines += ["", "Machines (folds trained on each): "
                  + "; ".join(f"{count} {'' if label == NOT_RECORDED else 'on '}{label}"
                              for label, count in summary["machines"].items()) + "."]
    if figure_names:
        lines += ["", "Figures: " + ", ".join(f"`figures/{n}`" for n in figure_names)]
    return "\n".join(lines) + "\n"


def _results_table(summary: dict) -> list[str]:
    has_js, paper = any("js_train_to_true" in e for e in summary["methods"].values()), summary.get("paper")
    header = ["method / setting"] + [f"{t} (%)" for _, t in METRICS]
    header += ([f"paper {paper['column']} (%)"] if paper else []) + (["JS train→true", "JS pred→true"] if has_js else [])
    has_draws = any(e.get("n_draws", 1) > 1 for e in summary["methods"].values())
    header.append("runs (draws × folds × seeds)" if has_draws else "runs (folds × seeds)")
    rows = []
    for label, e in summary["methods"].items():
        cells = [label] + [_cell(e, key) for key, _ in METRICS]
        if paper:
            cells.append(_number(paper["rows"].get(label, {}).get("value"), 1))
        if has_js:
            cells += [_number(e.get("js_train_to_true"), 4), _number(e.get("js_pred_to_true"), 4)]
        units = [e.get("n_draws", 1)] * has_draws + [e["n_folds"], e["n_seeds"]]
        cells.append(f"{e['n_runs']} ({' × '.join(map(str, units))})")
        rows.append(cells)
    note = ["", f"paper {paper['column']}: the paper's Table {paper['table']}, column {paper['column']}, measured on "
                f"{PAPER_SETUP}, not on this sweep's corpus and encoder; – where the paper has no such row."
            ] if paper else []
    return markdown_table(header, rows) + note


def _matrix_table(summary: dict, keys: list[str]) -> list[str]:
    matrix = _matrix(summary, keys, "ua")
    header = [f"{keys[0]} \\ {keys[1]}"] + [str(c) for c in matrix.columns]
    return markdown_table(header, [[str(i)] + [_number(v, 1) for v in row] for i, row in zip(matrix.index, matrix.values)])


def _paired_table(rows: dict) -> list[str]:
    by_draw = any("delta_ua_by_draw" in e for e in rows.values())
    header = ["method / setting", "pairs"] + [f"Δ{t} [95% CI], p" for _, t in METRICS]
    header += ["ΔUA on each draw"] if by_draw else []
    body = []
    for label, e in rows.items():
        cells = [label, str(e["n_pairs"])] + [_delta_cell(e, key) for key, _ in METRICS]
        if by_draw:
            cells.append(", ".join(f"{d}: {v:+.1f}" for d, v in e.get("delta_ua_by_draw", {}).items()) or "–")
        body.append(cells)
    return markdown_table(header, body)


def _precision_section(plans: dict, concurrency: dict, grid: dict) -> list[str]:
    """The precision plan of every paired ΔUA (`precision.plan`), a row per comparison, and how it
    was sized; report.json holds the same for WA."""
    draws, targets = bool(grid.get("draws")), " / ".join(f"±{t:g}" for t in precision.TARGETS)
    header = ["comparison", "units (draws × folds)" if draws else "units (folds)", "seeds per unit",
              "SD of unit ΔUA (between / within)", "ΔUA ± half-width", f"units for {targets}",
              f"draws for {targets}", f"wall time for {targets}"]
    every = _without_mirrors([(label, title, plan) for title, rows in plans.items() for label, plan in rows.items()])
    folds, at_once = every[0][1]["folds_per_draw"], concurrency["trials_at_once"]
    unrecorded = at_once and any(plan["trial_seconds"] is None for _, plan in every)
    return ["", "## Precision plan", "",
            "The seeds of one fold share its test speakers and training data, so here the unit of replication is "
            f"the {'(draw, fold) pair' if draws else 'fold'}: each ΔUA is averaged over the seeds of a unit first, "
            "and its 95% interval is a t-interval over units (half-width t · SD / √units). In brackets the SD of "
            "one seed's Δ split into a part between units and one within a unit (a one-way random-effects "
            "estimate; a unit's variance is between² + within² / seeds, so more seeds shrink only the second). "
            f"Units for {targets}: the fewest units whose interval would have that half-width at this SD"
            + (f"; draws: whole corpus draws of {folds} folds each." if draws else
               "; the folds of a recorded corpus are fixed, so more units than its folds are out of reach."),
            "",
            "Wall time: the trials still to train for those units (both rows, every seed of a unit) × the mean "
            "trial_seconds of the two rows' trials (trial.json, with the sweep's other trials beside them) ÷ "
            + (f"{at_once} trials at once ({concurrency['basis']}"
               + ("" if "recorded" in concurrency["basis"] else
                  "; this sweep did not record its concurrency, so this assumes none was set with --concurrency")
               + "). Worker start-up, outside every fold's trial_seconds, is not counted." if at_once else
               f"the trials at once, which is {concurrency['basis']}, so no wall time is given.")
            + (" Rows whose trials did not record trial_seconds (swept before trial.json held them) say "
               "\"not recorded\"." if unrecorded else ""),
            "", *markdown_table(header, [_precision_row(name, plan, draws) for name, plan in every])]


def _without_mirrors(rows: list[tuple[str, str, dict]]) -> list[tuple[str, dict]]:
    """(name, plan) per comparison, dropping "B vs A" after "A vs B": a Δ and its mirror have the
    same SD, interval width and plan."""
    seen, kept = set(), []
    for label, title, plan in rows:
        pair = frozenset((label, title.removeprefix("vs ")))
        if pair not in seen:
            seen.add(pair)
            kept.append((f"{label} {title}", plan))
    return kept


def _precision_row(name: str, plan: dict, draws: bool) -> list[str]:
    ua = plan["ua"]
    sized = [ua["targets"][f"{t:g}"] for t in precision.TARGETS] if ua["targets"] else []
    parts = f" ({ua['sd_between']:.2f} / {ua['sd_within']:.2f})" if ua["sd_within"] is not None else ""
    return [name, f"{plan['n_units']} ({plan['n_draws']} × {plan['n_folds']})" if draws else str(plan["n_units"]),
            f"{plan['seeds_per_unit']:g}", "–" if ua["sd_units"] is None else f"{ua['sd_units']:.2f}{parts}",
            f"{ua['delta']:+.2f} ± {ua['half_width']:.2f}" if ua["half_width"] is not None
            else f"{ua['delta']:+.2f} (no interval, < {MIN_PAIRS_FOR_CI} units)",
            " / ".join(str(s["units"]) for s in sized) or "–",
            " / ".join(str(s["draws"]) for s in sized) if draws and sized else "–",
            " / ".join(_wall_cell(s, plan["folds_per_draw"]) for s in sized) or "–"]


def _wall_cell(sized: dict, folds: int) -> str:
    if not sized["reachable"]:
        return f"beyond the {folds} folds"
    if sized["more_trials"] == 0:
        return "0 (done)"
    return _duration(sized["wall_seconds"])


def _duration(seconds: float | None) -> str:
    """A wall time for a table cell, in s, min, h or days; "not recorded" without one."""
    if seconds is None:
        return "not recorded"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.1f} d"


def _delta_cell(entry: dict, key: str) -> str:
    ci, p = entry[f"delta_{key}_ci"], entry[f"p_{key}"]
    interval = f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else " (no CI, < 3 pairs)"
    return f"{entry[f'delta_{key}']:+.2f}{interval}, p={'n/a' if p is None else f'{p:.3g}'}"


def _along_tables(along: dict) -> list[str]:
    """ΔUA against the reference, and the training labels' JS to the truth, level by level."""
    key, levels = along["key"], [str(level) for level in along["levels"]]
    methods = list(along["delta_ua"])
    lines = ["", f"## ΔUA against {along['reference']} along {key}", "",
             f"Each cell: the method's UA minus {along['reference']}'s, paired, mean [95% CI], Wilcoxon p.", ""]
    lines += markdown_table([key] + methods, [[level] + [_delta_cell(along["delta_ua"][m][level], "ua")
                                                         if level in along["delta_ua"][m] else "–" for m in methods]
                                              for level in levels])
    turns = along["sign_turns"]
    lines += ["", "Where the mean Δ changes sign: " + ("; ".join(
        f"{m} between {key}={lo:g} and {hi:g}" for m, pairs in turns.items() for lo, hi in pairs)
        + ". A turn between two intervals that both span 0 is a change of the mean, not a shown effect."
        if turns else "no method's mean Δ changes sign between neighbouring levels.")]
    js_methods = list(along["js_train_to_true"])
    if js_methods:
        lines += ["", f"## JS of the final training labels of the ambiguous samples to the truth (bits) along {key}",
                  "", "Each cell: mean over folds [95% CI]; lower is closer to the true distribution.", ""]
        lines += markdown_table([key] + js_methods, [[level] + [_js_cell(along["js_train_to_true"][m].get(level))
                                                                for m in js_methods] for level in levels])
    return lines


def _js_cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    ci = entry["ci"]
    return f"{entry['mean']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _cell(entry: dict, key: str) -> str:
    ci = entry[f"{key}_ci"]
    interval = f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""
    return f"{entry[key]:.2f} ± {entry[f'{key}_std']:.2f}{interval}"


def _number(value, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _matrix(summary: dict, keys: list[str], metric: str) -> pd.DataFrame:
    cells = [{keys[0]: _parse_point(e["point"])[keys[0]], keys[1]: _parse_point(e["point"])[keys[1]],
              metric: np.nan if e.get(metric) is None else e[metric]} for e in summary["methods"].values()]
    return pd.DataFrame(cells).pivot_table(index=keys[0], columns=keys[1], values=metric, aggfunc="mean")


# ----------------------------------------------------------------------------- figures


def _write_figures(sweep_dir: Path, frame: pd.DataFrame, summary: dict, grid: dict) -> list[Path]:
    from ..analysis.plots import save_figure

    out = sweep_dir / "figures"
    name = summary["grid"]
    figures = {f"{name}_folds.png": _plot_fold_points(frame, summary)}
    for reference, rows in summary["paired"].items():
        against = ("contrast" if reference.endswith(CONTRAST_SECTION) else
                   reference.split()[1] if "[" not in reference else "own-setting")  # "vs paper [α=..]": a grid point
        figures[f"{name}_paired_{against}.png"] = _plot_paired(rows, reference, name)
    keys = _shown_keys(grid)
    if len(keys) == 2:
        figures[f"{name}_heatmap.png"] = _plot_heatmap(summary, keys)
    if "along" in summary:
        figures[f"{name}_along_{summary['along']['key']}.png"] = _plot_along(summary["along"], name)
    if set(FIG6_PRESETS) <= set(frame["method"]):
        figures[f"{name}_fig6_tsne.png"] = _plot_fig6(sweep_dir, frame, name)
    return [save_figure(figure, out / filename) for filename, figure in figures.items()]


def _plot_fold_points(frame: pd.DataFrame, summary: dict):
    import seaborn as sns
    from matplotlib.figure import Figure

    order = list(summary["methods"])
    hue = "draw" if frame["draw"].nunique() > 1 else "seed"  # corpus draws vary more than training seeds
    figure = Figure(figsize=(10, 0.45 * len(order) + 1.8), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    numpy_state = np.random.get_state()
    np.random.seed(0)  # seaborn jitters from NumPy's global generator: the same figure on every run
    for ax, (key, title) in zip(axes, METRICS[:2]):
        sns.stripplot(data=frame, x=key, y="row", order=order, hue=hue, palette="crest", size=4, alpha=0.75,
                      jitter=0.2, ax=ax, legend=ax is axes[-1])
        means = [summary["methods"][r][key] for r in order]
        intervals = [summary["methods"][r][f"{key}_ci"] or [m, m] for r, m in zip(order, means)]
        ax.errorbar(means, range(len(order)), xerr=np.abs(np.array(intervals).T - means), fmt="D", color="black",
                    markersize=5, capsize=3, label="mean, 95% CI")
        ax.set_xlabel(f"{title} (%) per fold")
        ax.set_ylabel("")
        ax.grid(axis="x", alpha=0.3)
    np.random.set_state(numpy_state)
    axes[-1].legend(title=hue, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    units = "draw × fold × seed" if hue == "draw" else "fold × seed"
    figure.suptitle(f"{summary['grid']}: every {units} (dots) and the mean with its 95% CI (black)")
    return figure


def _plot_paired(rows: dict, reference: str, name: str):
    from matplotlib.figure import Figure

    labels = list(rows)
    figure = Figure(figsize=(9, 0.45 * len(labels) + 1.6), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, (key, title) in zip(axes, METRICS[:2]):
        deltas = np.array([rows[r][f"delta_{key}"] for r in labels])
        intervals = np.array([rows[r][f"delta_{key}_ci"] or [d, d] for r, d in zip(labels, deltas)])
        colours = ["tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:gray" for lo, hi in intervals]
        for y, (delta, (low, high), colour) in enumerate(zip(deltas, intervals, colours)):
            ax.errorbar([delta], [y], xerr=[[delta - low], [high - delta]], fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel(f"Δ{title} (points)")  # the suptitle names the reference
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # once: the axes share y; the first row on top, as in the table
    figure.suptitle(f"{name}: paired differences {reference} (row − reference), mean and 95% CI\n"
                    "(green/red: the CI excludes 0; no bar: fewer than 3 pairs)")
    return figure


def _plot_along(along: dict, name: str):
    """ΔUA against the reference (left) and the training labels' JS to the truth (right) along the
    level, a line per method with 95% intervals; an x on the zero line where a mean Δ turns sign."""
    import seaborn as sns
    from matplotlib.figure import Figure

    key, reference = along["key"], along["reference"]
    methods = list(dict.fromkeys([*along["delta_ua"], *along["js_train_to_true"]]))
    colours = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    step = 0.012 * (max(along["levels"]) - min(along["levels"]) or 1)  # dodge the intervals apart
    figure = Figure(figsize=(12, 4.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    panels = ((left, along["delta_ua"], "delta_ua", "delta_ua_ci"), (right, along["js_train_to_true"], "mean", "ci"))
    for ax, table, mean_key, ci_key in panels:
        for i, (method, by_level) in enumerate(table.items()):
            xs = np.array([float(level) for level in by_level]) + (i - len(table) / 2) * step
            means = np.array([e[mean_key] for e in by_level.values()])
            intervals = np.array([e[ci_key] or [m, m] for e, m in zip(by_level.values(), means)])
            ax.errorbar(xs, means, yerr=np.abs(intervals.T - means), fmt="o-", color=colours[method], capsize=3,
                        markersize=4, linewidth=1.2, label=method)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    for method, pairs in along["sign_turns"].items():
        for lo, hi in pairs:
            a, b = along["delta_ua"][method][str(lo)]["delta_ua"], along["delta_ua"][method][str(hi)]["delta_ua"]
            crossing = lo + (hi - lo) * a / (a - b)  # where the line between the two means meets 0
            left.plot([crossing], [0], marker="X", markersize=11, color=colours[method], markeredgecolor="black")
    left.axhline(0, color="black", linewidth=0.8)
    left.set_ylabel(f"ΔUA against {reference} (points)")
    left.set_title(f"UA minus {reference}'s, paired (X: the mean changes sign)")
    left.legend(fontsize=8, loc="best")
    right.set_ylabel("JS to the truth (bits)")
    right.set_title("final training labels of the ambiguous samples")
    right.legend(fontsize=8, loc="best")
    figure.suptitle(f"{name}: along {key}, mean and 95% CI over the paired (draw, fold, seed) observations")
    return figure


def _plot_heatmap(summary: dict, keys: list[str]):
    import seaborn as sns
    from matplotlib.figure import Figure

    panels = [(metric, f"{title} (%)", f"mean {title} over folds × seeds", ".1f", "viridis")
              for metric, title in METRICS[:2]]
    if any(e.get("js_train_to_true") is not None for e in summary["methods"].values()):
        # The labels' side of the story: lower is closer to the truth, so the reversed map keeps "bright = good".
        panels.append(("js_train_to_true", "JS, bits", "JS of the final training labels\nto the truth (ambiguous)",
                       ".3f", "viridis_r"))
    figure = Figure(figsize=(4.5 * len(panels), 3.6), layout="constrained")
    for ax, (metric, unit, title, fmt, cmap) in zip(figure.subplots(1, len(panels)), panels):
        sns.heatmap(_matrix(summary, keys, metric), annot=True, fmt=fmt, cmap=cmap, ax=ax, cbar_kws={"label": unit})
        ax.set_title(title)
    figure.suptitle(f"{summary['grid']}: {keys[0]} (rows) × {keys[1]} (columns)")
    return figure


def _plot_fig6(sweep_dir: Path, frame: pd.DataFrame, name: str):
    from matplotlib.figure import Figure

    from ..analysis.embeddings import tsne_of_run
    from ..analysis.plots import plot_tsne

    classes, shown = None, []
    figure = Figure(figsize=(10, 9), layout="constrained")
    for ax, method in zip(figure.subplots(2, 2).ravel(), FIG6_PRESETS):
        run = sorted(frame.loc[frame["method"] == method, "run"].unique())[0]
        classes = classes or list(runs.read_config(sweep_dir / run).data.classes)
        points, labels, speaker = tsne_of_run(sweep_dir / run)  # the same fold for all: the same test set
        shown.append(f"{Path(run).name}, fold {speaker}")
        plot_tsne(points, labels, classes, ax=ax, title=PRESETS[method].title)
    figure.suptitle(f"{name}: Fig. 6, t-SNE of the fused test embeddings per loss setting "
                    f"({', '.join(sorted(set(shown)))})")
    return figure


# ----------------------------------------------------------------------------- labels


def _shown_keys(grid: dict) -> list[str]:
    """The grid keys that make rows: all but the corpus draws, which are paired over."""
    return [key for key in grid.get("grid", {}) if key != grid.get("draws")]


def _point_label(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or DEFAULT_POINT


def _parse_point(label: str) -> dict:
    """`loss.alpha=0.3, loss.beta=0.1` -> {key: value}, numbers as numbers (so 2 sorts before 10)."""
    if label == DEFAULT_POINT:
        return {}
    return {key: yaml.safe_load(value) for key, value in (part.split("=", 1) for part in label.split(", "))}


def _row_label(method: str, point: str) -> str:
    return method if point == DEFAULT_POINT else f"{method} [{point}]"
