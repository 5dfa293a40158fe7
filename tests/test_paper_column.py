"""A grid's `paper:` (`experiments.grid.PaperRows`): the report's results table gets the paper's
value beside each row it maps, from `analysis/paper_numbers.csv`; a label the paper lacks is an
error when the grid is read. The sweep folder is written by hand, as in test_precision_plan.py:
nothing is trained."""

import json

import pytest
import yaml

from conftest import ROOT
from ser_lib.analysis import runs
from ser_lib.analysis.paper_numbers import paper_value
from ser_lib.errors import ConfigError
from ser_lib.experiments.grid import grid_from_dict, load_grid
from ser_lib.experiments.report import write_report
from ser_lib.experiments.report_markdown import paper_beside
from ser_lib.experiments.sweep import SWEEP_JSON

PAPER = {"table": "VIII", "column": "UA",
         "rows": {"paper [loss.beta=0.1]": "β = 0.1 (α = 0.3)", "paper [loss.beta=0.3]": "β = 0.3 (α = 0.3)"}}


def beta_grid(**extra) -> dict:
    """paper and soft-static over two values of β (α stays the demo profile's 0.3), two folds."""
    return {"name": "beta", "methods": ["paper", "soft-static"], "grid": {"loss.beta": [0.1, 0.3]}, "folds": 2,
            **extra}


def write_sweep(folder, tree: dict):
    """The sweep folder `ser sweep` would leave for the grid `tree`: sweep.json and a fold record
    per run and fold, with made-up scores."""
    grid = grid_from_dict(tree)
    speakers = ["A", "B"]
    for i, run in enumerate(grid.runs()):
        for j, speaker in enumerate(speakers):
            fold = runs.fold_dir(folder / run.name, speaker)
            fold.mkdir(parents=True)
            score = 50.0 + 5 * i + j
            (fold / runs.FOLD_RESULT).write_text(json.dumps({"speaker": speaker, "wa": score, "ua": score,
                                                             "macro_f1": score, "train_seconds": 1.0}))
    (folder / SWEEP_JSON).write_text(json.dumps({
        "grid": grid.to_dict(), "manifest": "m.csv", "speakers": speakers,
        "runs": [{"run": r.name, "method": r.method, "point": r.point, "seed": r.seed} for r in grid.runs()]}))
    return folder


def results_table(markdown: str) -> list[list[str]]:
    """The cells of the report's first table (the results)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method / setting"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [rows[0]] + rows[2:]  # without the |---| line


def test_the_report_shows_the_papers_value_in_the_mapped_rows(tmp_path):
    report = write_report(write_sweep(tmp_path / "sweep", beta_grid(paper=PAPER)), figures_dir=None)
    header, *body = results_table(report.markdown)
    column = header.index("paper UA (%)")
    cells = {row[0]: row[column] for row in body}
    assert cells == {"paper [loss.beta=0.1]": f"{paper_value('VIII', 'β = 0.1 (α = 0.3)', 'UA'):.1f}",
                     "paper [loss.beta=0.3]": f"{paper_value('VIII', 'β = 0.3 (α = 0.3)', 'UA'):.1f}",
                     "soft-static [loss.beta=0.1]": "–", "soft-static [loss.beta=0.3]": "–"}
    assert header.index("UA (%)") < column < header.index("runs (folds × seeds)")
    note = next(line for line in report.markdown.splitlines() if line.startswith("paper UA:"))
    assert "Table VIII, column UA" in note and "IEMOCAP" in note and "94.4 M-parameter encoder" in note
    saved = json.loads((tmp_path / "sweep" / "report.json").read_text())["paper"]
    assert saved["rows"]["paper [loss.beta=0.3]"] == {"paper_row": "β = 0.3 (α = 0.3)",
                                                     "value": paper_value("VIII", "β = 0.3 (α = 0.3)", "UA")}


def test_a_grid_without_paper_has_no_paper_column(tmp_path):
    report = write_report(write_sweep(tmp_path / "sweep", beta_grid()), figures_dir=None)
    header, *_ = results_table(report.markdown)
    assert header == ["method / setting", "WA (%)", "UA (%)", "macro-F1 (%)", "runs (folds × seeds)"]
    assert "paper UA" not in report.markdown and "paper" not in report.summary


@pytest.mark.parametrize("paper, message", [
    ({**PAPER, "rows": {"paper [loss.beta=0.1]": "β = 0.15 (α = 0.3)"}},
     r"paper row 'paper \[loss.beta=0.1\]': Table VIII has no row 'β = 0\.15 \(α = 0\.3\)'"),
    ({**PAPER, "table": "X"}, "no Table 'X'"),
    ({**PAPER, "column": "F1"}, "has no column 'F1'"),
    ({**PAPER, "rows": {"paper [loss.beta=0.2]": "β = 0.2 (α = 0.3)"}}, r"'paper \[loss.beta=0.2\]' selects none"),
    ({**PAPER, "rows": {"loss.alpha=0.3": "α = 0.3 (β = 0.1)"}}, r"\['loss.alpha'\] not among the grid keys"),
    ({**PAPER, "rows": {"loss.beta=0.1": "β = 0.1 (α = 0.3)", "paper": "β = 0.3 (α = 0.3)"}},
     r"all select the row 'paper \[loss.beta=0.1\]'"),
    ({"table": "VIII", "rows": PAPER["rows"]}, "paper must map table"),
])
def test_a_bad_paper_mapping_is_an_error_naming_the_file_and_the_label(tmp_path, paper, message):
    path = tmp_path / "beta.yaml"
    path.write_text(yaml.safe_dump(beta_grid(paper=paper), allow_unicode=True))
    with pytest.raises(ConfigError, match=message) as error:
        load_grid(path)
    assert str(error.value).startswith(f"{path}: ")


def test_the_shipped_grids_map_the_papers_rows():
    """Table VIII's cross has the paper's value only where the paper varies one factor; a selector
    without the encoder (Table VII) maps the rows of both encoders."""
    alpha_beta = load_grid(ROOT / "grids" / "table8-alpha-beta.yaml").paper
    assert alpha_beta.row("paper", {"loss.alpha": 0.5, "loss.beta": 0.1}) == "α = 0.5 (β = 0.1)"
    assert alpha_beta.row("paper", {"loss.alpha": 0.3, "loss.beta": 0}) == "β = 0 (α = 0.3)"
    assert alpha_beta.row("paper", {"loss.alpha": 0.5, "loss.beta": 0.3}) is None
    one_factor = load_grid(ROOT / "grids" / "table8-one-factor.yaml")  # the paper's design: every point has its row
    assert len(one_factor.points()) == 19 and all(one_factor.paper.row("paper", p) for p in one_factor.points())
    assert one_factor.paper.row("paper", {"loss.alpha": 0.3, "loss.beta": 0.7}) == "β = 0.7 (α = 0.3)"
    variants = load_grid(ROOT / "grids" / "table7-pretrained.yaml").paper
    assert {variants.row("paper", {"model.encoder": encoder, "model.variant": "full"})
            for encoder in ("tiny", "tiny-pretrained")} == {"Spatial-temporal multi-fusion model"}
    methods = load_grid(ROOT / "grids" / "methods.yaml").paper
    assert methods.row("paper", {}) == "Proposed model (ours)" and methods.row("soft-static", {}) is None


def one_factor_grid(**extra) -> dict:
    """The paper's Table VIII design in small: α at β = 0.1, then β at α = 0.3."""
    return {"name": "one-factor", "methods": ["paper"], "folds": 2,
            "grid": [{"loss.alpha": [0, 0.3], "loss.beta": [0.1]}, {"loss.alpha": [0.3], "loss.beta": [0, 0.3]}],
            **extra}


def test_a_list_of_grids_runs_the_union_of_their_points_once_each(tmp_path):
    grid = grid_from_dict(one_factor_grid())
    # (0.3, 0.1) is on both lines and runs once; the cross's (0, 0) and (0, 0.3) do not run.
    assert grid.points() == [{"loss.alpha": 0, "loss.beta": 0.1}, {"loss.alpha": 0.3, "loss.beta": 0.1},
                             {"loss.alpha": 0.3, "loss.beta": 0}, {"loss.alpha": 0.3, "loss.beta": 0.3}]
    assert grid.grid == {"loss.alpha": (0, 0.3), "loss.beta": (0.1, 0, 0.3)}
    assert grid_from_dict(grid.to_dict()).points() == grid.points()  # as sweep.json stores it
    # The report pairs each point with the method's own setting (α = 0.3, β = 0.1) and leaves the
    # cross's untrained cells empty.
    report = write_report(write_sweep(tmp_path / "sweep", one_factor_grid()), figures_dir=None)
    assert "vs paper [loss.alpha=0.3, loss.beta=0.1]" in report.markdown
    matrix = report.markdown[report.markdown.index("by loss.alpha (rows)"):]
    assert "| 0 | – |" in matrix.replace("0.0", "0")


@pytest.mark.parametrize("blocks, extra, message", [
    ([{"loss.alpha": [0]}, {"loss.beta": [0]}], {}, r"grid\[1\] has the keys \['loss.beta'\], grid\[0\] \['loss.alpha'\]"),
    ([], {}, "one or more non-empty mappings"),
    ([{"loss.alpha": [0, 0.3]}], {"contrast": "loss.alpha"}, "leave contrast out"),
])
def test_a_bad_list_of_grids_is_an_error(blocks, extra, message):
    with pytest.raises(ConfigError, match=message):
        grid_from_dict({"name": "bad", "methods": ["paper"], "grid": blocks, **extra})


def test_a_committed_report_gets_the_papers_values_beside_its_rows(tmp_path):
    """`paper_beside` (the book's tables) reads a report.md back and sets the paper's value beside
    each mapped row, with the report's mean and interval."""
    tree = beta_grid(paper=PAPER)
    write_report(write_sweep(tmp_path / "sweep", tree), figures_dir=None)
    lines = paper_beside(grid_from_dict(tree), tmp_path / "sweep" / "report.md")
    assert lines[0] == ("| report row | workbench UA (%) | runs | paper UA (%) | the paper's row (Table VIII) |")
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    written = {row[0]: row for row in results_table((tmp_path / "sweep" / "report.md").read_text())[1:]}
    assert set(rows) == {"paper [loss.beta=0.1]", "paper [loss.beta=0.3]"}  # soft-static has no paper row
    for label, (ours, runs_cell, value, paper_row) in rows.items():
        mean = written[label][2].split(" ± ")[0]  # the report's UA cell: mean ± std [low, high]
        assert ours == f"{float(mean):.1f}" and runs_cell == "2"  # no interval below 3 runs, as in the report
        assert value == f"{paper_value('VIII', paper_row, 'UA'):.1f}" and paper_row == PAPER["rows"][label]
