"""Sharing notebooks: `ser figures` names each stored figure by its section; `ser export-html`
inlines the widget renderer instead of pointing at a CDN (the browser test renders it offline)."""

import base64
import json

import nbformat
import pytest
from matplotlib.figure import Figure

from conftest import ROOT
from ser_lib.analysis.export import ExportError, export_html, notebook_figures, slug
from ser_lib.analysis.plots import png_bytes
from ser_lib.cli import main


def png_output(value: float) -> dict:
    figure = Figure(figsize=(2, 1))
    figure.subplots().plot([0, value])
    return nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png_bytes(figure)).decode()})


def notebook_with_figures(path):
    cells = [nbformat.v4.new_markdown_cell("# 03 · Training\n\n## Learning curves ($y_c$, eq. 6)"),
             nbformat.v4.new_code_cell("plot()", outputs=[png_output(1), png_output(2)]),
             nbformat.v4.new_markdown_cell("## Confusion matrix over the folds (Fig. 5)"),
             nbformat.v4.new_code_cell("plot()", outputs=[png_output(3)]),
             nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")])]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_slug_drops_latex_and_parentheses():
    assert slug("Learning curves ($y_c$, eq. 6)") == "learning-curves"
    assert slug("Confusion matrix over the folds (Fig. 5)") == "confusion-matrix-over-the-folds"
    assert slug("$$") == "figure"


def test_notebook_figures_are_named_by_notebook_and_section(tmp_path):
    notebook = notebook_with_figures(tmp_path / "03_training.ipynb")
    paths = notebook_figures(notebook, tmp_path / "figures")
    assert [p.name for p in paths] == ["03_learning-curves.png", "03_learning-curves-2.png",
                                       "03_confusion-matrix-over-the-folds.png"]
    stored = json.loads(notebook.read_text())["cells"][3]["outputs"][0]["data"]["image/png"]
    assert paths[2].read_bytes() == base64.b64decode(stored)


def test_unexecuted_or_unreadable_notebooks_are_named_in_the_error(tmp_path, capsys):
    empty = tmp_path / "01_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), empty)
    with pytest.raises(ExportError, match="01_x.ipynb: no figures stored"):
        notebook_figures(empty, tmp_path)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert main(["export-html", str(broken), "--out", str(tmp_path)]) == 2
    assert "broken.ipynb: not a readable notebook" in capsys.readouterr().err


def test_html_export_inlines_the_widget_renderer(tmp_path):
    page = export_html(ROOT / "notebooks" / "04_label_drift.ipynb", tmp_path / "04.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in page  # the saved widget state
    assert "embed-amd.js" not in page and "require.min.js" not in page  # nothing fetched to render widgets
    assert "createObjectURL" in page and "Automatic publicPath" in page  # the renderer runs from the page itself
