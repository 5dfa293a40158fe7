"""The Markdown of `ser report` (report.md), written from a `report_stats.SweepSummary`: the results
table, a matrix for two-key grids, the Δ along a noise level, the paired sections, the precision
plan and where the numbers came from."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.metrics import MIN_PAIRS_FOR_CI
from ..analysis.paper_numbers import paper_value
from ..analysis.results import ENCODER_AUDIO_NOTES, markdown_table, marked_label
from . import precision
from .grid import Grid, row_label
from .report_stats import (CODE_NOT_RECORDED, METRICS, NOT_RECORDED, Score, SweepSummary, grid_matrix, plan_rows, shown_keys)

PAPER_SETUP = "IEMOCAP with wav2vec2-base-960h, a 94.4 M-parameter encoder"  # where the paper's numbers come from


def format_report(summary: SweepSummary, figure_names: Sequence[str] = ()) -> str:
    grid = summary.grid
    lines = [f"# {grid['name']}", ""]
    if grid.get("description"):
        lines += [grid["description"], ""]
    trials = summary.trials
    if trials and trials["finished"] < trials["in_grid"]:
        lines += [f"**Incomplete:** {trials['finished']} of the grid's {trials['in_grid']} trials have finished; "
                  f"`ser sweep --resume` trains the rest.", ""]
    lines += _results_table(summary)
    keys = shown_keys(grid)
    if len(keys) == 2:
        lines += ["", f"## UA (%) by {keys[0]} (rows) and {keys[1]} (columns)", ""]
        lines += _matrix_table(summary, keys)
    if summary.along is not None:
        lines += _along_tables(summary.along)
    pairs = "same draw, fold and seed" if grid.get("draws") else "same fold and seed"
    for section in summary.paired:
        lines += ["", f"## Paired differences {section.title} ({pairs})", "",
                  "Each Δ is the row's score minus the reference's: positive means the row scored higher.", ""]
        lines += _paired_table(section.rows)
        if section.unreached:
            lines += ["", f"Not listed: {', '.join(section.unreached)}, which scored the same on every fold and seed "
                          f"at each {grid['contrast']}; the setting does not reach "
                          f"{'it' if len(section.unreached) == 1 else 'them'}."]
    lines += ["", summary.note]
    if summary.precision:
        lines += _precision_section(summary)
    if summary.machines:
        lines += ["", "Machines (folds trained on each): "
                  + "; ".join(f"{count} {'' if label == NOT_RECORDED else 'on '}{label}"
                              for label, count in summary.machines.items()) + "."]
    if set(summary.code) - {CODE_NOT_RECORDED}:  # sweeps from before the code version was recorded leave it out
        lines += ["", "Code (folds trained with each version, `git describe` of the checkout): "
                  + "; ".join(f"{count} with {version}" for version, count in summary.code.items()) + "."]
    if figure_names:
        lines += ["", "Figures: " + ", ".join(f"`figures/{n}`" for n in figure_names)]
    return "\n".join(lines) + "\n"


def _results_table(summary: SweepSummary) -> list[str]:
    rows, paper = summary.rows, summary.paper
    has_js = any(row.js_train_to_true is not None for row in rows)
    has_draws = any(row.n_draws > 1 for row in rows)
    header = ["method / setting"] + [f"{t} (%)" for _, t in METRICS]
    header += ([f"paper {paper['column']} (%)"] if paper else []) + (["JS train→true", "JS pred→true"] if has_js else [])
    header.append("runs (draws × folds × seeds)" if has_draws else "runs (folds × seeds)")
    body = []
    for row in rows:
        cells = [marked_label(row.label, row.encoder_audio)] + [_cell(row.scores[key]) for key, _ in METRICS]
        if paper:
            cells.append(_number(paper["rows"].get(row.label, {}).get("value"), 1))
        if has_js:
            cells += [_number(row.js_train_to_true, 4), _number(row.js_pred_to_true, 4)]
        units = [row.n_draws] * has_draws + [row.n_folds, row.n_seeds]
        cells.append(f"{row.n_runs} ({' × '.join(map(str, units))})")
        body.append(cells)
    note = ["", f"paper {paper['column']}: the paper's Table {paper['table']}, column {paper['column']}, measured on "
                f"{PAPER_SETUP}, not on this sweep's corpus and encoder; – where the paper has no such row."
            ] if paper else []
    kinds = [kind for kind in ENCODER_AUDIO_NOTES if any(row.encoder_audio == kind for row in rows)]
    note += [line for kind in kinds for line in ("", f"*{kind}*: {ENCODER_AUDIO_NOTES[kind]}")]
    return markdown_table(header, body) + note


def _matrix_table(summary: SweepSummary, keys: list[str]) -> list[str]:
    matrix = grid_matrix(summary.rows, keys, "ua")
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


def _precision_section(summary: SweepSummary) -> list[str]:
    """The precision plan of every paired ΔUA (`precision.plan`), a row per comparison, and how it
    was sized; report.json holds the same for WA."""
    draws, targets = bool(summary.grid.get("draws")), " / ".join(f"±{t:g}" for t in precision.TARGETS)
    header = ["comparison", "units (draws × folds)" if draws else "units (folds)", "seeds per unit",
              "SD of unit ΔUA (between / within)", "ΔUA ± half-width", f"units for {targets}",
              f"draws for {targets}", f"wall time for {targets}"]
    rows, concurrency = plan_rows(summary.precision), summary.concurrency
    folds, at_once = rows[0].plan["folds_per_draw"], concurrency["trials_at_once"]
    unrecorded = at_once and any(row.plan["trial_seconds"] is None for row in rows)
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
            "", *markdown_table(header, [_precision_row(row.comparison, row.plan, draws) for row in rows])]


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


def _delta_cell(entry: dict, key: str) -> str:
    ci, p = entry[f"delta_{key}_ci"], entry[f"p_{key}"]
    interval = f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else " (no CI, < 3 pairs)"
    return f"{entry[f'delta_{key}']:+.2f}{interval}, p={'n/a' if p is None else f'{p:.3g}'}"


def _js_cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    ci = entry["ci"]
    return f"{entry['mean']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _cell(score: Score) -> str:
    interval = f" [{score.ci[0]:.1f}, {score.ci[1]:.1f}]" if score.ci else ""
    return f"{score.mean:.2f} ± {score.std:.2f}{interval}"


_CELL = re.compile(r"^(-?[\d.]+) ± ([\d.]+)(?: \[(-?[\d.]+), (-?[\d.]+)\])?$")


def read_results_table(path: str | Path) -> pd.DataFrame:
    """The results table of a report.md that `format_report` wrote, read back: one row per method /
    setting (index: its label), and per metric its mean, std and interval (`ua`, `ua_std`,
    `ua_ci_low`, `ua_ci_high`; NaN where the report shows no interval) and `runs`. For the reports
    committed as `figures/NAME_report.md`, whose sweep folders are not at hand (notebooks 05 and
    07 set their few folds beside them); the values carry the report's rounding."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("| method / setting |"))
    except StopIteration:
        raise ValueError(f"{path}: no results table (a line starting '| method / setting |')") from None
    header = _table_cells(lines[start])
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, _table_cells(line)))
        row = {}
        for key, title in METRICS:
            match = _CELL.match(cells[f"{title} (%)"])
            if match is None:
                raise ValueError(f"{path}: cannot read {title} of {cells[header[0]]!r}: {cells[f'{title} (%)']!r}")
            mean, std, low, high = (float(v) if v is not None else np.nan for v in match.groups())
            row |= {key: mean, f"{key}_std": std, f"{key}_ci_low": low, f"{key}_ci_high": high}
        row["runs"] = int(cells[header[-1]].split()[0])
        rows[cells[header[0]]] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("row")


def _table_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _number(value, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def paper_beside(grid: Grid, report_path: str | Path) -> list[str]:
    """Lines of a Markdown table: each row of a committed report (`figures/NAME_report.md`) that
    the grid's `paper:` maps, its mean and interval beside the paper's value (`paper_numbers`).
    For the book: reports committed before the results table carried a paper column get one here,
    from the same data file."""
    paper = grid.paper
    if paper is None:
        raise ValueError(f"grid {grid.name!r} declares no paper table")
    key = next((key for key, title in METRICS if title == paper.column), None)
    if key is None:
        raise ValueError(f"grid {grid.name!r}: the report has no column {paper.column!r}")
    results = read_results_table(report_path)
    shown = shown_keys(grid.to_dict())
    body = []
    for method in grid.methods:
        for point in dict.fromkeys(tuple((k, p[k]) for k in shown) for p in grid.points()):
            point = dict(point)
            paper_row, label = paper.row(method, point), row_label(method, point)
            if paper_row is None or label not in results.index:
                continue
            ours = results.loc[label]
            interval = ("" if np.isnan(ours[f"{key}_ci_low"])
                        else f" [{ours[f'{key}_ci_low']:.1f}, {ours[f'{key}_ci_high']:.1f}]")
            body.append([label, f"{ours[key]:.1f}{interval}", str(int(ours["runs"])),
                         f"{paper_value(paper.table, paper_row, paper.column):.1f}", paper_row])
    header = ["report row", f"workbench {paper.column} (%)", "runs", f"paper {paper.column} (%)",
              f"the paper's row (Table {paper.table})"]
    return markdown_table(header, body)
