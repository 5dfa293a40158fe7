"""Pages of the book generated from the code, so that they cannot drift from it.

Before Sphinx reads the sources, `generate` writes into `book/_generated/` (git-ignored):
- `config.md`: every field of the typed config (`ser_lib/config.py`) with its default, the
  profiles' overrides and the comment above it in the code;
- `grids.md`: a table of the shipped grids (`grids/*.yaml`), each loaded by `load_grid`, so a broken
  grid fails the build naming its file; `reference/sweeps.md` includes it;
- `paper_tables.md`: the paper's Tables I–IX from `ser_lib/analysis/paper_numbers.csv`, laid out as
  the paper lays them out; `reproducing/paper.md` includes it;
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
import math
import re
import typing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

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


def text_cell(text: str) -> str:
    """Plain text in a Markdown table cell: whitespace collapsed, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def grid_folds(grid) -> int | None:
    """How many folds each run of `grid` trains, or None where only the sweep's --manifest says."""
    if isinstance(grid.folds, int):
        return grid.folds
    if isinstance(grid.folds, tuple):
        return len(grid.folds)
    kfold = {config.eval.kfold for config in grid.configs().values()}
    if len(kfold) == 1 and (k := kfold.pop()):
        return k  # K folds of speakers, whatever the corpus
    if grid.corpus == "synth":
        from ser_lib.data.corpora import synth

        return 2 * synth.SESSIONS  # two speakers (F, M) per session, one LOSO fold each
    return None


def grid_size(grid) -> str:
    """`11 methods × 3 seeds × 10 folds = 330 trials`; `… = 33 runs, each on all folds` when the
    number of folds depends on the corpus the sweep is given."""
    settings = {key: len(values) for key, values in grid.grid.items() if key != grid.draws}
    points = math.prod(settings.values())
    factors = [plural(len(grid.methods), "method")]
    if points > 1:
        factors.append(plural(points, "point") + (f" ({' × '.join(map(str, settings.values()))})"
                                                   if len(settings) > 1 else ""))
    if grid.draws is not None:  # a grid key too, but corpus draws rather than settings
        factors.append(plural(len(grid.grid[grid.draws]), "corpus draw"))
    factors.append(plural(len(grid.seeds), "seed"))
    runs = len(grid.methods) * len(grid.points()) * len(grid.seeds)
    folds = grid_folds(grid)
    if folds is None:
        return f"{' × '.join(factors)} = {plural(runs, 'run')}, each on all folds"
    return f"{' × '.join(factors + [plural(folds, 'fold')])} = {plural(runs * folds, 'trial')}"


def grids_page() -> str:
    from ser_lib.errors import SerError
    from ser_lib.experiments.grid import load_grid

    out = ["The shipped grids, generated from `grids/*.yaml` at each build and each file read by",
           "`ser sweep`'s own loader: the question is the grid's `description`, the paper column its `paper:`",
           "block (the table and column its report puts beside its results), and the size is counted from its",
           "methods, grid points, corpus draws, seeds and folds. A grid with `corpus: synth` generates its",
           "corpora, and every synthetic corpus has 10 speakers, so its `folds: all` is 10 leave-one-speaker-out",
           "folds; any other grid trains on the sweep's `--manifest`, whose speakers make its folds (10 for",
           "`ser synth`'s corpus and for EmoDB).",
           "", "| grid | question | paper | size |", "|---|---|---|---|"]
    for path in sorted((REPO / "grids").glob("*.yaml")):
        name = path.relative_to(REPO).as_posix()
        try:
            grid = load_grid(path)  # checks every run's config, as a sweep does before it starts
            size = grid_size(grid)
        except SerError:
            raise  # its message names the file
        except Exception as exc:
            raise SerError(f"{name}: {exc}") from exc
        paper = ""
        if grid.paper is not None:
            paper = (f"[Table {grid.paper.table}](../reproducing/paper.md#table-{grid.paper.table.lower()}), "
                     f"{text_cell(grid.paper.column)}")
        out.append(f"| `{name}` | {text_cell(grid.description)} | {paper} | {size} |")
    return "\n".join(out) + "\n"


FOLD_COLUMN = re.compile(r"^(?P<measure>.+), fold (?P<fold>\d+)$")  # Tables VII and IX: "UA, fold 3"
MAX_COLUMNS = 12  # a wider table is split into its averages and one table per measure over the folds
NOTE_COLUMN_MAX = 3  # a table this narrow gets its rows' notes as a column, a wider one as a line


def paper_subtables(values: pd.DataFrame) -> list[tuple[str, pd.DataFrame, dict[str, str]]]:
    """(caption, values, {printed column header: CSV column label}) for one of the paper's tables:
    one table, or where it has more than MAX_COLUMNS columns and per-fold ones, an "Average"
    table and a table per measure ("WA per fold") whose columns are the folds."""
    columns = list(dict.fromkeys(values["column"]))
    folds = {column: FOLD_COLUMN.match(column) for column in columns}
    if len(columns) <= MAX_COLUMNS or not any(folds.values()):
        return [("", values, {column: column for column in columns})]
    parts = [("Average", values[values["column"].isin([c for c in columns if not folds[c]])],
              {c: c for c in columns if not folds[c]})]
    for measure in dict.fromkeys(match["measure"] for match in folds.values() if match):
        chosen = {f"fold {match['fold']}": c for c, match in folds.items() if match and match["measure"] == measure}
        parts.append((f"{measure} per fold", values[values["column"].isin(list(chosen.values()))], chosen))
    return parts


def paper_markdown(values: pd.DataFrame, headers: dict[str, str], caption: str = "") -> list[str]:
    """One pivoted table (rows: the CSV's `row` labels in paper order; columns: `headers`, shown
    label -> CSV label; a `{table}` directive where it has a caption), then a line of its notes and
    unit. A note "row: WHAT" says what the row labels are: it heads them. Notes that each cover
    whole rows of a narrow table become a column."""
    rows = list(dict.fromkeys(values["row"]))
    columns = list(headers.values())
    printed = {(r, c): v for r, c, v in zip(values["row"], values["column"], values["value"])}
    label_header, notes = "", {}  # notes: note -> the (row, column) cells it is on
    for r, c, note in zip(values["row"], values["column"], values["note"]):
        if note.startswith("row: "):
            label_header = note.removeprefix("row: ")
        elif note:
            notes.setdefault(note, set()).add((r, c))
    units = set(values["unit"])

    def whole(groups: dict[str, set], cells: set) -> list[str] | None:
        """The groups (rows or columns) that `cells` is exactly made of, or None."""
        inside = [name for name, group in groups.items() if group and group <= cells]
        return inside if inside and set().union(*(groups[name] for name in inside)) == cells else None

    of_row = {r: {(r, c) for c in columns if (r, c) in printed} for r in rows}
    of_column = {shown: {(r, c) for r in rows if (r, c) in printed} for shown, c in headers.items()}
    scopes = {note: None if cells == set(printed) else (whole(of_row, cells) or whole(of_column, cells)
                                                        or [f"{r} ({c})" for r, c in printed if (r, c) in cells])
              for note, cells in notes.items()}
    noted = [(r, note) for note, cells in notes.items() for r in whole(of_row, cells) or [None]]
    row_note = dict(noted)  # a column of them where every note is on whole rows, each row's one
    note_column = (len(notes) > 1 and len(headers) <= NOTE_COLUMN_MAX and None not in row_note
                   and len(row_note) == len(noted))

    def header(shown: str, column: str) -> str:
        unit = set(values.loc[values["column"] == column, "unit"])
        return shown if len(units) == 1 or len(unit) != 1 or unit == {""} else f"{shown} ({unit.pop()})"

    names = [label_header] + [header(shown, c) for shown, c in headers.items()] + (["note"] if note_column else [])
    out = ["| " + " | ".join(map(text_cell, names)) + " |", "|" + "---|" * len(names)]
    for r in rows:
        shown = [r] + [printed.get((r, c), "") for c in columns] + ([row_note.get(r, "")] if note_column else [])
        out.append("| " + " | ".join(map(text_cell, shown)) + " |")
    if caption:
        out = [f":::{{table}} {caption}", *out, ":::"]
    line = [] if note_column else [
        text_cell(note) if scope is None else f"**{text_cell(', '.join(scope))}**: {text_cell(note)}"
        for note, scope in scopes.items()]
    line = ["Notes: " + " ".join(part if part.endswith(".") else part + "." for part in line)] if line else []
    if len(units) == 1 and units != {""}:
        line.append(f"Unit: {text_cell(units.pop())}.")
    return out + (["", " ".join(line)] if line else [])


def paper_page() -> str:
    import pandas as pd

    from ser_lib.analysis.paper_numbers import CSV_PATH, paper_tables

    # The values as printed ("71.30"), not as floats: read the file as text, as the module does.
    numbers = pd.read_csv(CSV_PATH, dtype=str, keep_default_na=False)
    out = ["These are the paper's numbers, typed from its text into `ser_lib/analysis/paper_numbers.csv`,",
           "the file from which the sweep reports (`ser report`) and `ser bench` read them; this page is",
           "generated from it at each build. Only the numbers are carried over: the paper's sentences are",
           "not reproduced."]
    for table in paper_tables():
        out += ["", f"## Table {table}"]
        for caption, values, headers in paper_subtables(numbers[numbers["table"] == table]):
            out += ["", *paper_markdown(values, headers, caption)]
    return "\n".join(out) + "\n"


def beside_pages() -> dict[Path, str]:
    """For each shipped grid that declares the paper's table it reproduces and has a committed
    report (figures/NAME_report.md): its rows beside the paper's values, `_generated/beside/NAME.md`."""
    from ser_lib.experiments.grid import load_grid
    from ser_lib.experiments.report_markdown import paper_beside

    pages = {}
    for path in sorted((REPO / "grids").glob("*.yaml")):  # none in a copy of the book outside the repository
        grid, report = load_grid(path), REPO / "figures" / f"{path.stem}_report.md"
        if grid.paper is not None and report.exists():
            lines = paper_beside(grid, report)
            pages[GENERATED / "beside" / f"{path.stem}.md"] = (
                f"The paper's Table {grid.paper.table} beside `{path.stem}` (generated from the grid's `paper:`, "
                "`ser_lib/analysis/paper_numbers.csv` and the committed report):\n\n" + "\n".join(lines) + "\n")
    return pages


def table_ii_page() -> str:
    """The paper's Table II per session (S_A clear, S_B ambiguous) beside the shares of the demo's
    synthetic corpus (figures/partition_table.md, `make demo`)."""
    from ser_lib.analysis.paper_numbers import paper_table

    table = paper_table("II")
    sessions = list(dict.fromkeys(table["column"]))
    count = {(row, column): value for row, column, value in zip(table["row"], table["column"], table["value"])}
    lines = ["| session | paper S_A (clear) | paper S_B (ambiguous) | paper share ambiguous |", "|---|---|---|---|"]
    for session in sessions:
        clear, ambiguous = count[("S_A", session)], count[("S_B", session)]
        lines.append(f"| {session} | {clear:.0f} | {ambiguous:.0f} | {ambiguous / (clear + ambiguous):.1%} |")
    clear, ambiguous = (sum(count[(row, s)] for s in sessions) for row in ("S_A", "S_B"))
    lines.append(f"| all | {clear:.0f} | {ambiguous:.0f} | {ambiguous / (clear + ambiguous):.1%} |")
    ours = _partition_totals(REPO / "figures" / "partition_table.md")
    return ("The paper's Table II (IEMOCAP, `ser_lib/analysis/paper_numbers.csv`), and the share of ambiguous "
            f"utterances among the partitioned ones: {ambiguous / (clear + ambiguous):.1%} in the paper, "
            f"{ours['ambiguous'] / (ours['clear'] + ours['ambiguous']):.1%} in the demo's synthetic corpus "
            f"({ours['clear']} clear, {ours['ambiguous']} ambiguous).\n\n" + "\n".join(lines) + "\n")


def _partition_totals(path: Path) -> dict[str, int]:
    """The clear and ambiguous totals of a partition table (`ser partition`), summed over its sessions."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| [session]"))
    header = [c.strip() for c in lines[start - 2].strip("|").split("|")]
    totals = {"clear": 0, "ambiguous": 0}
    for line in lines[start + 1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith("["):  # the next section ([speaker]): the sessions are done
            break
        for key in totals:
            totals[key] += int(cells[header.index(key)])
    return totals


def table_iv_v_page() -> str:
    """The paper's Tables IV (WA, UA: mean, std, 95% CI) and V (six metrics) beside the method's row
    of the committed method sweep (figures/methods_report.md)."""
    from ser_lib.analysis.paper_numbers import paper_value
    from ser_lib.experiments.report_markdown import read_results_table

    ours = read_results_table(REPO / "figures" / "methods_report.md").loc["paper"]
    lines = ["| metric | paper: mean ± std [95% CI] | workbench `paper`: mean ± std [95% CI] |", "|---|---|---|"]
    for metric in ("WA", "UA"):
        theirs = [paper_value("IV", metric, column) for column in ("Mean", "Std", "95% CI low", "95% CI high")]
        key = metric.lower()
        mine = [ours[key], ours[f"{key}_std"], ours[f"{key}_ci_low"], ours[f"{key}_ci_high"]]
        lines.append(f"| {metric} (Table IV) | {theirs[0]:.2f} ± {theirs[1]:.2f} [{theirs[2]:.2f}, {theirs[3]:.2f}] | "
                     f"{mine[0]:.2f} ± {mine[1]:.2f} [{mine[2]:.1f}, {mine[3]:.1f}] |")
    for metric in ("F1-score (macro)", "F1-score (weighted)", "Precision (macro)", "Precision (weighted)",
                   "Recall (macro)", "Recall (weighted)"):
        mine = f"{ours['macro_f1']:.2f} ± {ours['macro_f1_std']:.2f}" if metric == "F1-score (macro)" else \
            "not in the sweep reports"
        lines.append(f"| {metric} (Table V) | {paper_value('V', metric, 'Value'):.2f} | {mine} |")
    return ("The paper's Tables IV and V (IEMOCAP, 10 folds) beside the method's row of `methods` (synthetic "
            f"`small`, random encoder, {int(ours['runs'])} runs = 10 folds × 3 seeds; the report's mean ± std is "
            "over runs):\n\n" + "\n".join(lines) + "\n")


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
    pages = {GENERATED / "config.md": config_page(), GENERATED / "grids.md": grids_page(),
             GENERATED / "paper_tables.md": paper_page(), **beside_pages()}
    # A copy of the book outside the repository (tests/test_book.py) has no committed figures to set beside.
    if (REPO / "figures" / "partition_table.md").exists():
        pages[GENERATED / "beside" / "table2.md"] = table_ii_page()
    if (REPO / "figures" / "methods_report.md").exists():
        pages[GENERATED / "beside" / "table4-5.md"] = table_iv_v_page()
    for notebook in sorted((REPO / "notebooks").glob("0*.ipynb")):
        pages[BOOK / "course" / notebook.name] = notebook.read_text(encoding="utf-8")
    for path in sorted((REPO / "ser_lib").rglob("*.py")):
        pages[GENERATED / "source" / f"{module_name(path)}.md"] = module_page(path)
    for page, text in pages.items():
        page.parent.mkdir(parents=True, exist_ok=True)
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")
    for stale in (set((GENERATED / "source").glob("*.md")) | set((GENERATED / "beside").glob("*.md"))) - set(pages):
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
