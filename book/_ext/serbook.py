"""Pages of the book generated from the code, so that they cannot drift from it.

Before Sphinx reads the sources, `generate` writes into `book/_generated/` (git-ignored):
- `config.md`: every field of the typed config (`ser_lib/config.py`) with its default, the
  profiles' overrides and the comment above it in the code;
- `source/<module>.md`: one page per module of `ser_lib`, its docstring and its source, which the
  method's equations link to;
and copies the committed notebooks into `book/course/` (also git-ignored): Sphinx resolves a
symbolic link to its target, outside the book, so links to a linked notebook would not resolve.

After the build, `copy_mathjax` puts MathJax 2.7 (bundled by the `jupyter-server-mathjax` wheel)
under `_static/mathjax`, so equations are typeset without a network.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
REPO = BOOK.parent
GENERATED = BOOK / "_generated"


def field_comments(source: str) -> dict[tuple[str, str], str]:
    """(class, field) -> the comment lines directly above the field (or after it on its line)."""
    lines = source.splitlines()
    comments = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            above, row = [], item.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#"):
                above.insert(0, lines[row].strip().lstrip("#").strip())
                row -= 1
            trailing = lines[item.lineno - 1].partition("  # ")[2]
            comments[(node.name, item.target.id)] = " ".join(above + ([trailing] if trailing else []))
    return comments


def cell(value) -> str:
    text = "" if value is None else (f"`{value!r}`" if not isinstance(value, str) or value else "`''`")
    return text.replace("|", "\\|")


def config_page() -> str:
    from ser_lib import config as cfg

    comments = field_comments(Path(cfg.__file__).read_text(encoding="utf-8"))
    defaults = cfg.Config()
    profiles = sorted(cfg.PROFILES)
    out = ["# Config fields and profiles", "",
           "Generated from `ser_lib/config.py` at each build. Every entry point reads this one typed config:",
           "`--profile NAME`, `--config FILE.yaml` and `--set section.field=value` on the command line,",
           "the notebooks' `profile` and `overrides` parameters, a grid's `profile` and `set`.",
           "A profile is a set of overrides on top of the defaults; a field no profile names keeps its default in all.",
           "The `runtime` section says how a run executes, not what it is: it is not part of a run's",
           "identity, so a run started on a GPU resumes on a CPU.", ""]
    out += ["## Profiles", "", "| profile | overrides |", "|---|---|"]
    for name in profiles:
        settings = ", ".join(f"`{key}={value!r}`" for key, value in cfg.PROFILES[name].items())
        out.append(f"| `{name}` | {settings.replace('|', chr(92) + '|')} |")
    hints = typing.get_type_hints(cfg.Config)
    for section in dataclasses.fields(cfg.Config):
        part = getattr(defaults, section.name)
        if not dataclasses.is_dataclass(part):
            continue
        doc = (hints[section.name].__doc__ or "").strip().splitlines()[0]
        out += ["", f"## `{section.name}`", "", doc, "",
                "| field | default | profiles | what it is |", "|---|---|---|---|"]
        for item in dataclasses.fields(part):
            key = f"{section.name}.{item.name}"
            overrides = "; ".join(f"{p}: {cell(cfg.PROFILES[p][key])}" for p in profiles if key in cfg.PROFILES[p])
            comment = comments.get((type(part).__name__, item.name), "").replace("|", "\\|")
            out.append(f"| `{key}` | {cell(getattr(part, item.name))} | {overrides} | {comment} |")
    top = [f for f in dataclasses.fields(cfg.Config) if not dataclasses.is_dataclass(getattr(defaults, f.name))]
    out += ["", "## Top level", "", "| field | default | what it is |", "|---|---|---|"]
    out += [f"| `{f.name}` | {cell(getattr(defaults, f.name))} | {comments.get(('Config', f.name), '')} |" for f in top]
    return "\n".join(out) + "\n"


def module_page(path: Path) -> str:
    relative = path.relative_to(REPO).as_posix()
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    summary = docstring.split("\n\n")[0].replace("\n", " ")
    depth = "../" * len((GENERATED / "source").relative_to(BOOK).parts)
    return (f"# `{relative}`\n\n{summary}\n\n"
            f"```{{literalinclude}} ../{depth}{relative}\n:language: python\n:linenos:\n```\n")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def generate(app) -> None:
    """Write the generated pages; only files whose text changed, so incremental builds stay fast."""
    pages = {GENERATED / "config.md": config_page()}
    for notebook in sorted((REPO / "notebooks").glob("0*.ipynb")):
        pages[BOOK / "course" / notebook.name] = notebook.read_text(encoding="utf-8")
    for path in sorted((REPO / "ser_lib").rglob("*.py")):
        pages[GENERATED / "source" / f"{module_name(path)}.md"] = module_page(path)
    for page, text in pages.items():
        page.parent.mkdir(parents=True, exist_ok=True)
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")
    for stale in set((GENERATED / "source").glob("*.md")) - set(pages):
        stale.unlink()


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from ser_lib.analysis.export import copy_mathjax as copy_mathjax_into

    copy_mathjax_into(Path(app.outdir) / "_static")  # the same copy `ser export-html` writes beside its pages


def setup(app):
    app.connect("builder-inited", generate)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
