"""Sharing executed notebooks: their figures as PNG files, and self-contained HTML pages.

`notebook_figures` copies every figure a notebook shows into `figures/`, named after the notebook
and the section heading above it (`03_learning-curves.png`), so the reference figures come from
the same cells a reader sees. `export_html` writes a notebook as an HTML page that renders without
a network. nbconvert's page would fetch two things from CDNs:
- the widget JavaScript: ours inlines the vendored `@jupyter-widgets/html-manager` renderer
  (`static/html-manager/README.md`), so the saved widget state (notebook 04's explorer) renders;
- MathJax: ours loads MathJax 2.7 from a `mathjax/` folder written beside the page, copied from the
  `jupyter-server-mathjax` wheel (too many files to inline: the fonts are loaded on demand).
The page has no kernel: the widgets show their saved state, and changing a control needs
JupyterLab or `ser dashboard`.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

from ..errors import SerError
from ..files import atomic_write_bytes, atomic_write_text

STATIC = Path(__file__).parent / "static"
WIDGET_RENDERER = STATIC / "html-manager" / "embed.js"
TEMPLATE_DIR = STATIC / "nbconvert"
TEMPLATE = "offline"
MATHJAX_DIR = "mathjax"
DANGLING = {"a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "per", "the", "to", "with"}
HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)


class ExportError(SerError):
    """A notebook that cannot be read or exported, named in the message."""


def read_notebook(path: str | Path) -> dict:
    path = Path(path)
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ExportError(f"{path}: not a readable notebook ({error})") from error
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ExportError(f"{path}: not a Jupyter notebook (no list of cells)")
    return notebook


def slug(text: str, limit: int = 40) -> str:
    """A file-name part from a heading: lower case, words joined by '-', LaTeX and markup dropped."""
    text = re.sub(r"\$[^$]*\$|[`*_]|\(.*?\)", " ", text.lower())
    name = ""
    for word in re.findall(r"[a-z0-9]+", text):  # whole words, up to `limit` characters
        if name and len(name) + 1 + len(word) > limit:
            break
        name = f"{name}-{word}" if name else word[:limit]
    while (cut := name.rpartition("-"))[1] and cut[2] in DANGLING:  # not "...-per-session-and"
        name = cut[0]
    return name or "figure"


def notebook_figures(notebook_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write each PNG output of an executed notebook to `out_dir` as `NN_<section>[-k].png`.

    NN is the notebook's number prefix; <section> is the nearest Markdown heading above the cell.
    Raises `ExportError` for a notebook without stored figures (one that was never executed).
    """
    notebook_path, out_dir = Path(notebook_path), Path(out_dir)
    prefix = notebook_path.stem.split("_")[0]
    section, written, counts = "figure", [], {}
    for cell in read_notebook(notebook_path)["cells"]:
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown" and (headings := HEADING.findall(source)):
            section = slug(headings[-1])
        for output in cell.get("outputs", []):
            if png := output.get("data", {}).get("image/png"):
                counts[section] = counts.get(section, 0) + 1
                suffix = f"-{counts[section]}" if counts[section] > 1 else ""
                path = out_dir / f"{prefix}_{section}{suffix}.png"
                atomic_write_bytes(path, base64.b64decode(png))
                written.append(path)
    if not written:
        raise ExportError(f"{notebook_path}: no figures stored; execute it first (make notebooks)")
    return written


def mathjax_source() -> Path:
    """The MathJax 2.7 distribution bundled by the `jupyter-server-mathjax` wheel."""
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def copy_mathjax(out_dir: str | Path) -> Path:
    """Copy MathJax into `out_dir/mathjax` (once: an existing copy of the same version is kept)."""
    target = Path(out_dir) / MATHJAX_DIR
    if not (target / "MathJax.js").exists():
        shutil.copytree(mathjax_source(), target, dirs_exist_ok=True)
    return target


def export_html(notebook_path: str | Path, out_path: str | Path) -> Path:
    """Write `notebook_path` as an HTML page at `out_path`, with MathJax in a `mathjax/` folder
    beside it: widgets and equations render offline."""
    from nbconvert import HTMLExporter  # imported here: the CLI starts faster without it
    import nbformat

    notebook_path, out_path = Path(notebook_path), Path(out_path)
    read_notebook(notebook_path)  # a clear error before nbconvert's
    exporter = HTMLExporter(template_name=TEMPLATE, extra_template_basedirs=[str(TEMPLATE_DIR)])
    renderer = WIDGET_RENDERER.read_text(encoding="utf-8")  # the template writes it as a JSON string
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4),
                                          resources={"ser_widget_renderer": renderer})
    copy_mathjax(out_path.parent)
    atomic_write_text(out_path, body)
    return out_path
