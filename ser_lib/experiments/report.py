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

The work is split three ways over the records of `report_stats` (`SweepSummary`, one `RowSummary`
per row, one `Comparison` per paired section, one `PlanRow` per comparison of the precision plan):
`report_stats` computes them, `report_markdown` writes report.md from them, `report_figures` draws
the figures, each named from its record. This module ties them together.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write_json, atomic_write_text
from .report_figures import write_figures
from .report_markdown import format_report
from .report_stats import (Comparison, PlanRow, RowSummary, Score, SweepSummary, along_level, collect, comparisons,
                           machine_label, paired_against, paired_along, paper_column, precision_plans,
                           reference_point, summarize, summarize_sweep)

__all__ = ["Report", "write_report", "collect", "summarize_sweep", "format_report", "write_figures", "SweepSummary",
           "RowSummary", "Score", "Comparison", "PlanRow", "along_level", "comparisons", "machine_label",
           "paired_against", "paired_along", "paper_column", "precision_plans", "reference_point", "summarize"]


@dataclass
class Report:
    summary: dict  # report.json, what `ser report --json` prints
    markdown: str
    paths: list[Path] = field(default_factory=list)


def write_report(sweep_dir: str | Path, figures_dir: str | Path | None = "figures") -> Report:
    """Statistics, figures and Markdown of a sweep, written into it; the figures and report.md also
    into `figures_dir` (None: not)."""
    sweep_dir = Path(sweep_dir)
    state, frame = collect(sweep_dir)
    summary = summarize_sweep(sweep_dir, state, frame)
    figures = write_figures(sweep_dir, frame, summary)
    markdown, saved = format_report(summary, [p.name for p in figures]), summary.to_json()
    atomic_write_text(sweep_dir / "report.md", markdown)
    atomic_write_json(sweep_dir / "report.json", saved)
    if figures_dir is not None:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        for path in figures:
            shutil.copyfile(path, Path(figures_dir) / path.name)
        shutil.copyfile(sweep_dir / "report.md", Path(figures_dir) / f"{summary.grid['name']}_report.md")
    return Report(saved, markdown, [sweep_dir / "report.md", sweep_dir / "report.json", *figures])
