"""results.json / results.md / predictions.csv, run comparison, and the evaluation figures."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from ser_lib.config import Config, EvalConfig
from ser_lib.errors import ConfigError
from ser_lib.data.folds import Fold
from ser_lib.analysis.metrics import aggregate_folds, classification_metrics
from ser_lib.analysis.plots import plot_confusion, plot_label_drift, plot_learning_curves, plot_tsne, save_figure
from ser_lib.analysis.results import (OPTIMISTIC_NOTE, fold_record, format_comparison, load_results, predictions_frame,
                             write_results)

CLASSES = Config().data.classes


def run(tmp_path, name, predicted_per_fold, validation="session", js=True):
    """A two-fold run where fold i predicts `predicted_per_fold[i]` for 4 clear test samples."""
    config = Config(eval=EvalConfig(validation=validation))
    folds, frames = [], []
    for i, (speaker, predicted) in enumerate(zip(("s1", "s2"), predicted_per_fold)):
        fold = Fold(speaker, (speaker,) if validation == "paper" else ("s3",), ("s4", "s5"), validation == "paper")
        probs = np.eye(len(CLASSES))[[CLASSES.index(p) for p in predicted]]
        extra = {"js_ambiguous_test": 0.1 * (i + 1)} if js else {}
        folds.append(fold_record(fold, classification_metrics(list(CLASSES), predicted, CLASSES), **extra))
        frames.append(predictions_frame([f"{speaker}_{k}" for k in range(4)], [speaker] * 4, speaker,
                                        list(CLASSES), probs, CLASSES, subset=["clear"] * 4))
    results = write_results(tmp_path / name, aggregate_folds(folds), folds, pd.concat(frames), config)
    return results


def test_write_results_files_and_keys(tmp_path):
    results = run(tmp_path, "a", [list(CLASSES), ["anger", "anger", "sadness", "neutral"]])
    out = tmp_path / "a"
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "results.json", "results.md"]  # no temp files
    loaded = load_results(out)
    assert loaded == results == json.loads((out / "results.json").read_text())
    assert loaded["wa"] == pytest.approx(87.5) and loaded["ua"] == pytest.approx(87.5)
    # Two folds: no interval is reported (it would be tens of points wide and run past 100).
    assert loaded["wa_ci"] is None and loaded["ua_ci"] is None and loaded["js_ambiguous_test_ci"] is None
    assert "No confidence interval: 2 fold(s)" in (out / "results.md").read_text()
    assert loaded["js_ambiguous_test"] == pytest.approx(0.15)
    assert loaded["validation"] == "session" and loaded["optimistic"] is False
    assert [f["speaker"] for f in loaded["folds"]] == ["s1", "s2"]
    assert loaded["folds"][1]["wa"] == 75.0 and loaded["folds"][1]["validation_speakers"] == ["s3"]
    assert {"ua", "macro_f1", "weighted_f1", "confusion", "per_class", "optimistic"} <= set(loaded["folds"][0])
    assert loaded["confusion"][1] == [1, 1, 0, 0]
    assert loaded["config"]["eval"]["validation"] == "session"
    assert loaded["summary"]["macro_f1"]["n"] == 2

    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert list(predictions.columns[:5]) == ["utt_id", "speaker", "fold", "label", "predicted"]
    assert [f"prob_{c}" for c in CLASSES] == list(predictions.columns[5:9])
    assert predictions["predicted"].tolist()[4:6] == ["anger", "anger"]

    markdown = (out / "results.md").read_text()
    assert "| s2 | s3 | 75.00 | 75.00 |" in markdown
    assert "**mean ± std** |  | 87.50 ± 17.68" in markdown and "**95% CI**" in markdown
    assert "js_ambiguous_test" in markdown and "Optimistic" not in markdown


def test_optimistic_runs_are_labelled_everywhere(tmp_path):
    results = run(tmp_path, "paper", [list(CLASSES)] * 2, validation="paper", js=False)
    assert results["optimistic"] is True and results["validation"] == "paper"
    assert all(f["optimistic"] and f["validation"] == "paper" for f in results["folds"])
    assert OPTIMISTIC_NOTE in (tmp_path / "paper" / "results.md").read_text()
    assert "js_ambiguous_test" not in results


def test_comparison_is_paired_on_the_same_folds(tmp_path):
    a = run(tmp_path, "a", [list(CLASSES), ["anger", "anger", "sadness", "neutral"]])
    b = run(tmp_path, "b", [["anger"] * 4, ["anger", "anger", "sadness", "neutral"]])
    table = format_comparison(a, b, ("with correction", "no correction (α=0)"))
    assert "| WA (%) | 87.50 ± 17.68 | 50.00 ± 35.36 | +37.50 (no CI: < 3 folds) |" in table
    assert "paired 95% CI" in table and "2 folds, same test speakers" in table
    other = dict(b, folds=[dict(f, speaker=f["speaker"] + "x") for f in b["folds"]])
    assert "different folds" in format_comparison(a, other, ("a", "b"))


def test_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="no results file"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid results file"):
        load_results(tmp_path)
    fold = fold_record(Fold("s1", ("s2",), ("s3",)), classification_metrics(["anger"], ["anger"], CLASSES))
    with pytest.raises(ValueError, match=r"predictions lack column\(s\) \['prob_anger'"):
        write_results(tmp_path / "x", None, [fold], pd.DataFrame(columns=["utt_id", "speaker", "fold", "label",
                                                                          "predicted"]), Config())
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_figures_render(tmp_path):
    figure = plot_confusion([[5, 1, 0, 0], [2, 3, 0, 0], [0, 0, 4, 1], [0, 0, 0, 0]], CLASSES).figure
    assert save_figure(figure, tmp_path / "confusion.png").stat().st_size > 0
    history = [{"epoch": e, "stage": 1, "train_loss": 1.5 - 0.1 * e, "val_wa": 40 + e, "val_ua": 38 + e}
               for e in range(1, 4)]
    history += [{"epoch": e, "stage": 2, "train_loss": 1.2 - 0.1 * e, "val_wa": 50 + e, "val_ua": None}
                for e in range(1, 5)]
    ax = plot_learning_curves(history)
    losses = [line for line in ax.lines if line.get_color() == "k"]
    assert [line.get_xdata().tolist() for line in losses] == [[0, 1, 2], [3, 4, 5, 6]]  # stage 2 after stage 1
    ua_points = [line.get_xdata().tolist() for line in ax.figure.axes[1].lines if line.get_marker() == "s"]
    assert ua_points == [[0, 1, 2], []]  # missing values are skipped
    save_figure(ax.figure, tmp_path / "curves.svg")
    drift = {"α=0.3": [(1, 0.3), (2, 0.25)], "α=0": [(1, 0.3), (2, 0.32)]}
    save_figure(plot_label_drift(drift).figure, tmp_path / "drift.png")
    rng = np.random.default_rng(0)
    ax = plot_tsne(rng.normal(size=(20, 2)), rng.integers(0, 4, 20), CLASSES, title="t-SNE")
    assert len(ax.collections) == 4
    save_figure(ax.figure, tmp_path / "tsne.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.svg", "drift.png", "tsne.png"]


def test_intervals_from_three_folds_are_clipped_to_the_range():
    from ser_lib.analysis.metrics import aggregate, reportable_interval

    stat = aggregate([100.0, 100.0, 80.0])
    assert stat["ci95"][1] > 100  # the raw t-interval runs past the range
    assert reportable_interval(stat) == [pytest.approx(stat["ci95"][0]), 100.0]
    assert reportable_interval(aggregate([0.01, 0.02, 0.3]), (0.0, 1.0))[0] == 0.0
    assert reportable_interval(aggregate([50.0, 60.0])) is None
