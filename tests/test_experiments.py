"""Grids, sweeps on local Ray, the report and notebook 06.

One 2 x 2 sweep (paper and soft-static x two values of β, two folds of the tiny corpus) is run
once for the module; the report, the resume rule and the notebook read it."""

import json

import numpy as np
import pandas as pd
import papermill
import pytest
import yaml

from conftest import ROOT
from ser_lib.analysis import runs
from ser_lib.cli import main as ser
from ser_lib.errors import ConfigError, SerError
from ser_lib.runtime import code_version
from ser_lib.experiments.grid import grid_from_dict, load_grid
from ser_lib.experiments import corpora
from ser_lib.experiments.report import (Comparison, SweepSummary, along_level, comparisons, format_report,
                                        paired_against, paired_along, reference_point)
from ser_lib.experiments.sweep import _fold_names, _partitions, run_sweep

pytestmark = pytest.mark.ray  # starts Ray clusters: `make test` runs these files on one worker


def write_grid(path, **tree):
    path.write_text(yaml.safe_dump(tree))
    return path


def test_grid_expands_seed_major_and_names_runs():
    grid = grid_from_dict({"name": "g", "methods": ["paper", "soft-static"], "grid": {"loss.beta": [0.1, 0.3]},
                           "seeds": [0, 1]})
    names = [run.name for run in grid.runs()]
    assert len(names) == 8 and names[0] == "paper/loss.beta=0.1/seed-0" and names[4].endswith("seed-1")
    config = grid.config(grid.runs()[3])
    assert (config.loss.alpha, config.loss.beta, config.seed, config.runtime.threads) == (0.0, 0.3, 0, 1)
    assert grid.speakers(["a", "b", "c"]) == ["a", "b", "c"]
    assert grid_from_dict({"folds": 2}).speakers(["a", "b", "c"]) == ["a", "b"]


@pytest.mark.parametrize("tree, message", [
    ({"methods": ["nope"]}, "unknown method"),
    ({"grid": {"loss.alpha": [0.3, 2.0]}}, r"run paper/loss.alpha=2/seed-0: loss.alpha"),
    ({"grid": {"loss.nope": [1]}}, "unknown config key 'loss.nope'"),
    ({"colour": "red"}, "unknown grid key"),
    ({"folds": -1}, "folds must be"),
    ({"grid": {"loss.beta": [0.1, 0.3]}, "contrast": "loss.alpha"}, "contrast 'loss.alpha' must be a grid key"),
    ({"corpus": "iemocap"}, "corpus must be one of"),
    ({"grid": {"loss.beta": [0.1, 0.3]}, "draws": "synth.seed"}, "draws 'synth.seed' must be a grid key"),
    ({"grid": {"train.smile_sets": ["a", "b"]}, "along": "train.smile_sets"}, "numeric values"),
])
def test_bad_grids_are_config_errors_naming_the_problem(tree, message):
    with pytest.raises(ConfigError, match=message):
        grid_from_dict(tree, source="g.yaml")


NOISE_GRID = {"name": "noise", "corpus": "synth", "methods": ["paper", "soft-static"],
              "grid": {"synth.annotator_temperature": [1.0, 4.0], "synth.seed": [0, 1]}, "draws": "synth.seed",
              "along": "synth.annotator_temperature"}


def test_a_grid_with_draws_runs_draw_major():
    """Stopped early, a sweep over corpus draws has every method and level of the first draws."""
    runs_ = grid_from_dict(NOISE_GRID).runs()
    assert [run.point["synth.seed"] for run in runs_] == [0] * 4 + [1] * 4
    assert [run.method for run in runs_[:4]] == ["paper", "paper", "soft-static", "soft-static"]
    config = grid_from_dict(NOISE_GRID).config(runs_[-1])
    assert (config.synth.seed, config.synth.annotator_temperature) == (1, 4.0)


def test_a_synth_grid_generates_each_corpus_once_and_reuses_it(tmp_path, monkeypatch):
    made = []

    def fake_synthesize(folder, seed, size, progress, workers, annotator_temperature, annotator_confusion):
        made.append(folder.name)
        folder.mkdir(parents=True)
        (folder / "manifest.csv").write_text("utt_id\n")
        return folder / "manifest.csv"

    monkeypatch.setattr("ser_lib.data.corpora.synth.synthesize_corpus", fake_synthesize)
    grid = grid_from_dict(NOISE_GRID)
    manifests = corpora.run_manifests(grid, grid.configs(), None, progress=False, root=tmp_path)
    assert sorted(made) == ["small-seed0-temp1-conf0", "small-seed0-temp4-conf0", "small-seed1-temp1-conf0",
                            "small-seed1-temp4-conf0"]  # four corpora for eight runs
    assert manifests["soft-static/synth.annotator_temperature=4,synth.seed=1/seed-0"] == (
        tmp_path / "small-seed1-temp4-conf0" / "manifest.csv")
    assert corpora.run_manifests(grid, grid.configs(), None, progress=False, root=tmp_path) == manifests
    assert len(made) == 4
    with pytest.raises(ConfigError, match="generates its corpora .* drop --manifest"):
        corpora.run_manifests(grid, grid.configs(), tmp_path / "manifest.csv", progress=False, root=tmp_path)
    with pytest.raises(ConfigError, match="give the sweep a --manifest"):
        plain = grid_from_dict({"name": "g"})
        corpora.run_manifests(plain, plain.configs(), None, progress=False)


def test_corpora_with_other_folds_cannot_share_a_sweep(tiny_corpus, tmp_path):
    manifest = pd.read_csv(tiny_corpus)
    fewer = tmp_path / "manifest.csv"
    manifest[manifest["speaker"] != manifest["speaker"].iloc[0]].assign(
        path=lambda f: [str(tiny_corpus.parent / p) for p in f["path"]]).to_csv(fewer, index=False)
    grid = grid_from_dict({"name": "g", "methods": ["paper", "soft-static"]})
    configs = grid.configs()
    runs_ = list(configs)
    partitions = _partitions(configs, dict.fromkeys(runs_, tiny_corpus))
    assert _fold_names(grid.name, configs, partitions) == sorted(manifest["speaker"].unique()) and len(partitions) == 1
    with pytest.raises(ConfigError, match="different folds"):
        _fold_names(grid.name, configs, _partitions(configs, {runs_[0]: tiny_corpus, runs_[1]: fewer}))


def noise_frame(ua: dict) -> pd.DataFrame:
    """Fold rows of a two-method sweep over a noise level and two corpus draws, as `collect` makes them."""
    rows = []
    for (method, level, draw, speaker), value in ua.items():
        point = f"synth.annotator_temperature={level}"
        rows.append({"method": method, "point": point, "row": f"{method} [{point}]", "draw": draw, "seed": 0,
                     "speaker": speaker, "synth.annotator_temperature": level, "synth.seed": draw, "wa": value,
                     "ua": value, "macro_f1": value, "js_train_to_true": 0.1 * level if method == "paper" else 0.05,
                     "machine": "m"})
    return pd.DataFrame(rows)


def test_draws_are_paired_over_and_the_report_shows_where_the_sign_turns():
    # paper minus soft-static: +4 and +2 at T=1 (draws 0, 1; fold A), -6 and -2 at T=4.
    ua = {("soft-static", 1.0, 0, "A"): 50.0, ("soft-static", 1.0, 1, "A"): 60.0,
          ("soft-static", 4.0, 0, "A"): 40.0, ("soft-static", 4.0, 1, "A"): 45.0,
          ("paper", 1.0, 0, "A"): 54.0, ("paper", 1.0, 1, "A"): 62.0,
          ("paper", 4.0, 0, "A"): 34.0, ("paper", 4.0, 1, "A"): 43.0}
    frame = noise_frame(ua)
    paired = paired_against(frame, "soft-static")
    low = paired["paper [synth.annotator_temperature=1.0]"]
    assert low["n_pairs"] == 2 and low["delta_ua"] == pytest.approx(3.0)  # draw 0 with draw 0, 1 with 1
    assert low["delta_ua_by_draw"] == {"0": pytest.approx(4.0), "1": pytest.approx(2.0)}
    sections = [Comparison("method", "soft-static", paired)]
    along = along_level(frame, sections, NOISE_GRID)
    assert along["key"] == "synth.annotator_temperature" and along["levels"] == [1.0, 4.0]
    assert along["delta_ua"]["paper"]["4.0"]["delta_ua"] == pytest.approx(-4.0)
    assert along["sign_turns"] == {"paper": [[1.0, 4.0]]}
    assert along["js_train_to_true"]["paper"]["4.0"]["mean"] == pytest.approx(0.4)
    assert along_level(frame, [Comparison("method", "paper", paired)], NOISE_GRID) is None  # no soft-static reference
    assert along_level(frame, sections, {**NOISE_GRID, "along": None}) is None
    markdown = format_report(SweepSummary(NOISE_GRID, paired=sections, note="n", along=along))
    assert "changes sign: paper between synth.annotator_temperature=1 and 4" in markdown
    assert "same draw, fold and seed" in markdown and "0: +4.0, 1: +2.0" in markdown


def test_shipped_grids_load():
    for path in sorted((ROOT / "grids").glob("*.yaml")):
        grid = load_grid(path)
        assert grid.runs(), path


@pytest.fixture(scope="module")
def sweep(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    quick = {"train.batch_size": 4, "train.stage1_max_epochs": 1, "train.max_epochs": 2, "train.patience": 10,
             "model.conv_channels": "8,8,8,8,8", "model.fusion_dims": "16,16,16", "model.classifier_hidden": 8,
             "cache_dir": str(out / "cache")}
    grid = write_grid(out / "grid.yaml", name="two-by-two", profile="demo", set=quick,
                      methods=["paper", "soft-static"], grid={"loss.beta": [0.1, 0.3]}, seeds=[0], folds=2)
    outcome = run_sweep(grid, tiny_corpus, out / "sweep", progress=False)
    return {"grid": grid, "manifest": tiny_corpus, "dir": out / "sweep", "outcome": outcome}


def test_sweep_trains_every_trial_into_run_folders(sweep):
    outcome = sweep["outcome"]
    assert (outcome.trials, outcome.trained, outcome.failed, len(outcome.complete_runs)) == (8, 8, [], 4)
    state = json.loads((sweep["dir"] / "sweep.json").read_text())
    assert [r["run"] for r in state["runs"]][:2] == ["paper/loss.beta=0.1/seed-0", "paper/loss.beta=0.3/seed-0"]
    for run in state["runs"]:
        assert len(runs.fold_dirs(sweep["dir"] / run["run"])) == 2
        assert (sweep["dir"] / run["run"] / "results.json").exists()
        for fold in runs.fold_dirs(sweep["dir"] / run["run"]):  # a CPU-only machine: trials stay on the CPU
            trial = runs.read_trial_info(fold)
            assert (trial["device"], trial["gpu_ids"], trial["finished"]) == ("cpu", [], True) and trial["node_ip"]
            machine = trial["machine"]  # what the report says each number came from
            assert machine["cpu"] and machine["device"] == "cpu" and machine["autocast"] in ("bfloat16", "fp32")
            assert trial["code"] == code_version()  # and the code it ran


def test_a_finished_trial_is_never_run_again(sweep):
    with pytest.raises(SerError, match="--resume"):
        run_sweep(sweep["grid"], sweep["manifest"], sweep["dir"], progress=False)
    again = run_sweep(sweep["grid"], sweep["manifest"], sweep["dir"], resume=True, progress=False)
    assert (again.trained, again.already_finished) == (0, 8)


def test_report_json_matches_the_fold_records(sweep, capsys, tmp_path):
    assert ser(["report", str(sweep["dir"]), "--json", "--figures", str(tmp_path / "figures")]) == 0
    report = json.loads(capsys.readouterr().out)
    row = report["methods"]["paper [loss.beta=0.3]"]
    ((machine, folds),) = report["machines"].items()  # one machine trained all 8 folds
    assert folds == 8 and "autocast" in machine and machine in (sweep["dir"] / "report.md").read_text()
    assert report["trials"] == {"finished": 8, "in_grid": 8} and "Incomplete" not in (sweep["dir"] / "report.md").read_text()
    for key in ("wa", "ua", "macro_f1", "wa_ci", "ua_ci", "n_runs", "js_train_to_true"):
        assert key in row
    records = runs.fold_records(sweep["dir"] / "paper/loss.beta=0.3/seed-0")
    assert row["wa"] == pytest.approx(np.mean([r["wa"] for r in records]))
    assert row["n_runs"] == 2 and row["wa_ci"] is None  # no interval from 2 runs
    paired = report["paired"]["vs soft-static"]["paper [loss.beta=0.3]"]
    baseline = runs.fold_records(sweep["dir"] / "soft-static/loss.beta=0.3/seed-0")
    assert paired["n_pairs"] == 2
    assert paired["delta_ua"] == pytest.approx(np.mean([a["ua"] - b["ua"] for a, b in zip(records, baseline)]))
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "two-by-two_folds.png", "two-by-two_paired_paper.png", "two-by-two_paired_soft-static.png",
        "two-by-two_report.md"]


def test_a_one_method_grid_is_paired_against_the_methods_own_setting():
    """Tables VII and VIII have one method: each grid point is paired with the paper's own point."""
    grid = grid_from_dict({"name": "ab", "methods": ["paper"], "grid": {"loss.beta": [0.3, 0.1, 0.0]}})
    state = {"grid": grid.to_dict(), "runs": [{"point": run.point} for run in grid.runs()]}
    ua = {(0.3, "A"): 60.0, (0.3, "B"): 70.0, (0.1, "A"): 50.0, (0.1, "B"): 66.0, (0.0, "A"): 40.0, (0.0, "B"): 80.0}
    frame = pd.DataFrame([{"method": "paper", "point": f"loss.beta={beta}", "row": f"paper [loss.beta={beta}]",
                           "seed": 0, "speaker": speaker, "wa": value, "ua": value, "macro_f1": value}
                          for (beta, speaker), value in ua.items()])
    assert reference_point(state, frame) == "loss.beta=0.1"  # the paper's β, not the grid's first value
    paired = paired_against(frame, "loss.beta=0.1", by="point")
    assert set(paired) == {"paper [loss.beta=0.3]", "paper [loss.beta=0.0]"}
    assert paired["paper [loss.beta=0.3]"]["delta_ua"] == pytest.approx(((60 - 50) + (70 - 66)) / 2)
    assert paired["paper [loss.beta=0.0]"]["n_pairs"] == 2
    two_methods = frame.assign(method=["paper", "soft-static"] * 3)
    assert reference_point(state, two_methods) is None


def test_report_on_a_folder_without_a_sweep_is_a_clear_error(tmp_path, capsys):
    assert ser(["report", str(tmp_path)]) == 2
    assert "not a sweep folder" in capsys.readouterr().err


def test_a_failed_trial_is_reported_and_the_others_finish(tiny_corpus, tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", name="fails", profile="demo", methods=["smile-svm"],
                      set={"cache_dir": str(tmp_path / "cache")},
                      grid={"train.smile_sets": ["eGeMAPSv02", "NoSuchSet"]}, folds=1)
    status = ser(["sweep", "--grid", str(grid), "--manifest", str(tiny_corpus), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 1 and "NoSuchSet" in captured.err
    assert runs.is_finished(runs.fold_dir(tmp_path / "out" / "smile-svm/train.smile_sets=eGeMAPSv02/seed-0", "S1F"))


@pytest.mark.slow
def test_notebook_06_renders_the_sweep(sweep, tmp_path):
    executed = tmp_path / "06.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "06_reproducing_tables.ipynb"), str(executed),
                               kernel_name="python3", parameters={"sweep_dir": str(sweep["dir"])},
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    outputs = [o for cell in json.loads(executed.read_text())["cells"] for o in cell.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    text = "".join(o.get("data", {}).get("text/markdown", "") if isinstance(o.get("data", {}).get("text/markdown"), str)
                   else "".join(o.get("data", {}).get("text/markdown", [])) for o in outputs)
    assert "Paired differences vs soft-static" in text


def test_a_contrast_pairs_each_value_with_the_first_at_the_same_other_values():
    """Table VII with two encoders: each pretrained variant minus the random one of the same variant."""
    ua = {("tiny", "temporal", "A"): 25.0, ("tiny", "temporal", "B"): 27.0, ("tiny", "full", "A"): 70.0,
          ("tiny", "full", "B"): 74.0, ("pre", "temporal", "A"): 55.0, ("pre", "temporal", "B"): 61.0,
          ("pre", "full", "A"): 72.0, ("pre", "full", "B"): 73.0}
    frame = pd.DataFrame([{"method": "paper", "model.encoder": encoder, "model.variant": variant, "seed": 0,
                           "speaker": speaker, "row": f"paper [{encoder}, {variant}]", "wa": value, "ua": value,
                           "macro_f1": value} for (encoder, variant, speaker), value in ua.items()])
    paired = paired_along(frame, "model.encoder", "tiny", ["model.variant"])
    assert set(paired) == {"paper [pre, temporal]", "paper [pre, full]"}
    assert paired["paper [pre, temporal]"]["delta_ua"] == pytest.approx(((55 - 25) + (61 - 27)) / 2)
    assert paired["paper [pre, full]"]["delta_ua"] == pytest.approx(((72 - 70) + (73 - 74)) / 2)
    assert paired["paper [pre, full]"]["n_pairs"] == 2


def test_a_contrast_leaves_out_a_method_the_setting_does_not_reach():
    """smile-svm never reads model.encoder: its Δ would be 0 by construction, so it is named, not listed."""
    ua = {("clear-hard", "tiny"): (70.0, 72.0), ("clear-hard", "pre"): (74.0, 71.0),
          ("smile-svm", "tiny"): (80.0, 82.0), ("smile-svm", "pre"): (80.0, 82.0)}
    frame = pd.DataFrame([{"method": method, "model.encoder": encoder, "seed": 0, "speaker": speaker, "draw": 0,
                           "point": f"model.encoder={encoder}", "row": f"{method} [{encoder}]",
                           "wa": value, "ua": value, "macro_f1": value}
                          for (method, encoder), values in ua.items() for speaker, value in zip("AB", values)])
    grid = {"name": "encoders", "grid": {"model.encoder": ["tiny", "pre"]}, "contrast": "model.encoder"}
    contrast = [section for section in comparisons({"grid": grid, "runs": []}, frame) if section.kind == "contrast"]
    assert len(contrast) == 1
    assert set(contrast[0].rows) == {"clear-hard [pre]"} and contrast[0].unreached == ["smile-svm"]
    assert contrast[0].rows["clear-hard [pre]"]["delta_ua"] == pytest.approx(((74 - 70) + (71 - 72)) / 2)
    report = format_report(SweepSummary(grid=grid, paired=contrast))
    assert "Not listed: smile-svm, which scored the same on every fold and seed at each model.encoder" in report
