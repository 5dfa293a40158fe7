"""Sphinx configuration of the course book (`make book`): MyST-NB renders the committed notebooks
without running them, and everything the pages load is served from the site itself."""

import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
sys.path[:0] = [str(BOOK / "_ext"), str(BOOK.parent)]

project = "ser-workbench"
author = "the ser-workbench authors"
copyright = "the ser-workbench authors, MIT licence"
extensions = ["myst_nb", "sphinxarg.ext", "serbook"]
# Generated parts of other pages (included), not pages of their own: _generated/config.md of
# reference/config.md, grids.md of reference/sweeps.md, paper_tables.md of reproducing/paper.md,
# beside/*.md (the paper's values beside a report) of reproducing/tables.md.
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_generated/config.md", "_generated/grids.md",
                    "_generated/paper_tables.md", "_generated/beside/*.md"]

# The notebooks are committed executed; the book shows those outputs and never runs a cell.
nb_execution_mode = "off"
nb_merge_streams = True
# Notebook outputs in Markdown (a sweep report's tables, notebook 06) are GitHub-flavoured: MyST-NB's
# default, CommonMark, has no tables and printed them as lines of pipes.
nb_render_markdown_format = "gfm"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]  # papermill's and tqdm's own output types

# Offline: MathJax 2.7 from the jupyter-server-mathjax wheel (copied by serbook.copy_mathjax) and
# the widget renderer the HTML export already vendors (@jupyter-widgets/html-manager).
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
# MyST marks each page tex2jax_ignore and its math "math", so MathJax 2 must be told to process
# those (myst_update_mathjax configures only MathJax 3). The wheel bundles only the STIX-Web fonts
# (the classic notebook configured it the same way).
myst_update_mathjax = False
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processClass": "math|output_area|tex2jax_process", "ignoreClass": "tex2jax_ignore"},
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
    "messageStyle": "none",
}
html_static_path = ["_static", str(BOOK.parent / "ser_lib" / "analysis" / "static" / "html-manager")]
html_css_files = ["book.css"]
nb_ipywidgets_js = {"embed.js": {}}

html_theme = "sphinx_book_theme"
html_title = "ser-workbench: the course"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
}
html_last_updated_fmt = None
html_copy_source = False
