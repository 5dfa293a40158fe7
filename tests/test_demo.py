"""The demo's comparison: the shared stage 1 is exact, and the paired statistics and verdict."""

import pandas as pd
import pytest

from ser_lib.analysis import runs
from ser_lib.config import load_config
from ser_lib.demo import BASELINE, paired_comparison, remove_other_folds, share_stage1
from ser_lib.method.presets import apply_preset
from ser_lib.train.loso import run_loso


def test_baseline_from_the_methods_stage1_equals_a_baseline_from_scratch(tiny_corpus, tmp_path, quick):
    config = load_config("demo", overrides={**quick, "eval.folds": "S1F"})
    baseline = apply_preset(config, BASELINE)
    run_loso(config, tiny_corpus, tmp_path / "paper", progress=False)
    share_stage1(tmp_path / "paper", tmp_path / "shared", ["S1F"])
    shared = run_loso(baseline, tiny_corpus, tmp_path / "shared", resume=True, progress=False)
    scratch = run_loso(baseline, tiny_corpus, tmp_path / "scratch", progress=False)
    read = lambda run: runs.read_fold_predictions(runs.fold_dir(tmp_path / run, "S1F"))  # noqa: E731
    pd.testing.assert_frame_equal(read("shared"), read("scratch"))
    assert shared["folds"][0]["wa"] == scratch["folds"][0]["wa"]


def folds(values):
    return {"folds": [{"speaker": f"S{i}", "wa": wa, "ua": ua} for i, (wa, ua) in enumerate(values)]}


def test_paired_comparison_reports_interval_p_value_and_verdict():
    corrected = folds([(80, 80), (70, 72), (75, 76), (60, 66), (90, 91)])
    baseline = folds([(70, 70), (65, 66), (70, 71), (58, 60), (80, 81)])
    result = paired_comparison(corrected, baseline)
    assert result["n_pairs"] == 5 and result["delta_ua"] == pytest.approx(7.4)
    low, high = result["delta_ua_ci"]
    assert 0 < low < 7.4 < high
    assert result["p_value"] == pytest.approx(0.0625)  # exact Wilcoxon, 5 positive differences
    assert not result["significant"] and "smallest two-sided Wilcoxon p is 0.0625" in result["verdict"]
    six = paired_comparison(folds([(80, 80 + i) for i in range(6)]), folds([(70, 70)] * 6))
    assert six["p_value"] == pytest.approx(0.03125) and six["significant"]


def test_paired_comparison_with_two_folds_draws_no_conclusion():
    result = paired_comparison(folds([(80, 80), (70, 70)]), folds([(90, 90), (60, 65)]))
    assert result["delta_ua_ci"] is None and not result["significant"]
    assert "too few" in result["verdict"]


def test_a_demo_with_fewer_folds_removes_the_other_fold_folders(tmp_path):
    for speaker in ("A", "B", "C"):
        (tmp_path / f"fold-{speaker}").mkdir()
    (tmp_path / "soft-static").mkdir()
    remove_other_folds(tmp_path, ("A", "B"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold-A", "fold-B", "soft-static"]
