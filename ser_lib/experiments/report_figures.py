"""The figures of `ser report`, drawn from a `report_stats.SweepSummary` and the sweep's fold rows:
per-fold points with each row's mean and interval, the paired differences of each section, a
heatmap for two-key grids, the Δ along a noise level and Fig. 6 (t-SNE of the four loss settings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import runs
from ..analysis.results import marked_label
from ..method.presets import FIG6_PRESETS, PRESETS
from .report_stats import METRICS, Comparison, SweepSummary, grid_matrix, shown_keys

JITTER = 0.2  # how far the fold points spread around their row, in rows


def write_figures(sweep_dir: Path, frame: pd.DataFrame, summary: SweepSummary) -> list[Path]:
    """Every figure the sweep has, saved into `sweep_dir/figures`; each is named from its record."""
    from ..analysis.plots import save_figure

    name = summary.grid["name"]
    figures = {f"{name}_folds.png": _plot_fold_points(frame, summary)}
    marks = {row.label: row.encoder_audio for row in summary.rows}
    for section in summary.paired:
        figures[f"{name}_paired_{section.figure}.png"] = _plot_paired(section, name, marks)
    keys = shown_keys(summary.grid)
    if len(keys) == 2:
        figures[f"{name}_heatmap.png"] = _plot_heatmap(summary, keys)
    if summary.along is not None:
        figures[f"{name}_along_{summary.along['key']}.png"] = _plot_along(summary.along, name)
    if set(FIG6_PRESETS) <= set(frame["method"]):
        figures[f"{name}_fig6_tsne.png"] = _plot_fig6(sweep_dir, frame, name)
    return [save_figure(figure, sweep_dir / "figures" / filename) for filename, figure in figures.items()]


def _plot_fold_points(frame: pd.DataFrame, summary: SweepSummary):
    """Every fold's WA and UA as a dot, jittered across its row and coloured by seed (or corpus
    draw), with the row's mean and 95% CI in black."""
    import seaborn as sns
    from matplotlib.figure import Figure

    order = [row.label for row in summary.rows]
    hue = "draw" if frame["draw"].nunique() > 1 else "seed"  # corpus draws vary more than training seeds
    # Jittered across the row by a generator of its own, not NumPy's global one: the same figure every run.
    y = frame["row"].map({label: i for i, label in enumerate(order)}).to_numpy(float)
    y += np.random.default_rng(0).uniform(-JITTER, JITTER, len(frame))
    figure = Figure(figsize=(10, 0.45 * len(order) + 1.8), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, (key, title) in zip(axes, METRICS[:2]):
        sns.scatterplot(x=frame[key], y=y, hue=frame[hue], palette="crest", s=16, alpha=0.75, linewidth=0, ax=ax,
                        legend="auto" if ax is axes[-1] else False)
        scores = [row.scores[key] for row in summary.rows]
        means = np.array([s.mean for s in scores])
        intervals = np.array([s.ci or [s.mean, s.mean] for s in scores])
        ax.errorbar(means, range(len(order)), xerr=np.abs(intervals.T - means), fmt="D", color="black",
                    markersize=5, capsize=3, label="mean, 95% CI")
        ax.set_xlabel(f"{title} (%) per fold")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(order)), [marked_label(row.label, row.encoder_audio, markdown=False)
                                           for row in summary.rows])
    axes[0].set_ylim(len(order) - 0.5, -0.5)  # the first row on top, as in the table
    axes[-1].legend(title=hue, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    units = "draw × fold × seed" if hue == "draw" else "fold × seed"
    figure.suptitle(f"{summary.grid['name']}: every {units} (dots) and the mean with its 95% CI (black)")
    return figure


def _plot_paired(section: Comparison, name: str, marks: dict[str, str] | None = None):
    """Each row's paired Δ against the section's reference; `marks`: row label -> what its encoder
    heard (`RowSummary.encoder_audio`), shown after the label where it heard the corpus."""
    from matplotlib.figure import Figure

    rows = section.rows
    labels = list(rows)
    figure = Figure(figsize=(9, 0.45 * len(labels) + 1.6), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, (key, title) in zip(axes, METRICS[:2]):
        deltas = np.array([rows[r][f"delta_{key}"] for r in labels])
        has_ci = [bool(rows[r][f"delta_{key}_ci"]) for r in labels]
        intervals = np.array([rows[r][f"delta_{key}_ci"] or [d, d] for r, d in zip(labels, deltas)])
        # Without an interval (fewer than 3 pairs) nothing excludes 0: grey, never green or red.
        colours = ["tab:gray" if not ci else "tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:gray"
                   for ci, (lo, hi) in zip(has_ci, intervals)]
        for y, (delta, (low, high), colour) in enumerate(zip(deltas, intervals, colours)):
            ax.errorbar([delta], [y], xerr=[[delta - low], [high - delta]], fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(labels)), [marked_label(r, (marks or {}).get(r), markdown=False) for r in labels])
        ax.set_xlabel(f"Δ{title} (points)")  # the suptitle names the reference
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # once: the axes share y; the first row on top, as in the table
    figure.suptitle(f"{name}: paired differences {section.title} (row − reference), mean and 95% CI\n"
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


def _plot_heatmap(summary: SweepSummary, keys: list[str]):
    import seaborn as sns
    from matplotlib.figure import Figure

    panels = [(metric, f"{title} (%)", f"mean {title} over folds × seeds", ".1f", "viridis")
              for metric, title in METRICS[:2]]
    if any(row.js_train_to_true is not None for row in summary.rows):
        # The labels' side of the story: lower is closer to the truth, so the reversed map keeps "bright = good".
        panels.append(("js_train_to_true", "JS, bits", "JS of the final training labels\nto the truth (ambiguous)",
                       ".3f", "viridis_r"))
    figure = Figure(figsize=(4.5 * len(panels), 3.6), layout="constrained")
    for ax, (metric, unit, title, fmt, cmap) in zip(figure.subplots(1, len(panels)), panels):
        sns.heatmap(grid_matrix(summary.rows, keys, metric), annot=True, fmt=fmt, cmap=cmap, ax=ax,
                    cbar_kws={"label": unit})
        ax.set_title(title)
    figure.suptitle(f"{summary.grid['name']}: {keys[0]} (rows) × {keys[1]} (columns)")
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
