"""report.md's results table read back (`read_results_table`), as notebooks 05 and 07 read the
committed reports: what `format_report` writes comes back, rounded as the report rounds it."""

import math

import pytest

from conftest import ROOT
from ser_lib.experiments.report_markdown import format_report, read_results_table
from ser_lib.experiments.report_stats import RowSummary, Score, SweepSummary


def row(label, ua, ci, runs):
    scores = {"wa": Score(ua - 1.0, 4.0, ci), "ua": Score(ua, 5.25, ci), "macro_f1": Score(ua - 3.0, 6.0, ci)}
    return RowSummary(label=label, method=label.split()[0], point={}, n_runs=runs, n_folds=runs, n_seeds=1, n_draws=1,
                      scores=scores, js_train_to_true=0.05, js_pred_to_true=0.12)


def test_the_results_table_comes_back_as_written(tmp_path):
    grid = {"name": "roundtrip", "methods": ["paper", "soft-static"], "grid": {"loss.beta": [0.1]}}
    summary = SweepSummary(grid=grid, rows=[row("paper [loss.beta=0.1]", 71.504, [66.12, 76.87], 10),
                                            row("soft-static [loss.beta=0.1]", 68.0, None, 2)])
    path = tmp_path / "report.md"
    path.write_text(format_report(summary), encoding="utf-8")
    table = read_results_table(path)
    assert list(table.index) == ["paper [loss.beta=0.1]", "soft-static [loss.beta=0.1]"]
    paper = table.loc["paper [loss.beta=0.1]"]
    assert (paper["ua"], paper["ua_std"], paper["ua_ci_low"], paper["ua_ci_high"]) == (71.50, 5.25, 66.1, 76.9)
    assert paper["wa"] == 70.50 and paper["runs"] == 10
    assert math.isnan(table.loc["soft-static [loss.beta=0.1]", "ua_ci_low"])  # no interval from 2 runs


def test_a_committed_report_reads_and_a_file_without_a_table_is_named(tmp_path):
    table = read_results_table(ROOT / "figures" / "table9-losses_report.md")
    assert set(table.index) == {"cor-cor", "ic-ic", "paper", "soft-static"}
    assert table["runs"].min() >= 10 and table["ua"].between(0, 100).all()
    empty = tmp_path / "notes.md"
    empty.write_text("# no table here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="notes.md: no results table"):
        read_results_table(empty)


def test_a_paired_difference_without_an_interval_is_drawn_grey():
    """Green and red mean "the CI excludes 0": a Δ over fewer than 3 pairs has no CI, so it is grey
    however large; one whose CI excludes 0 keeps its colour."""
    from matplotlib.colors import to_rgba

    from ser_lib.experiments.report_figures import _plot_paired
    from ser_lib.experiments.report_stats import Comparison

    rows = {"two pairs": {"delta_wa": 6.7, "delta_wa_ci": None, "delta_ua": 5.6, "delta_ua_ci": None},
            "ten pairs": {"delta_wa": 6.0, "delta_wa_ci": [1.0, 11.0], "delta_ua": -6.0, "delta_ua_ci": [-11.0, -1.0]}}
    figure = _plot_paired(Comparison("method", "paper", rows), "grid")
    for ax, expected in zip(figure.axes[:2], (("tab:gray", "tab:green"), ("tab:gray", "tab:red"))):
        colours = [line.get_color() for line in ax.get_lines() if line.get_marker() == "o"]
        assert [to_rgba(c) for c in colours] == [to_rgba(c) for c in expected]
