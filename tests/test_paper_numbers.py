"""The paper's numbers (`ser_lib/analysis/paper_numbers.csv`): the file's schema, each value
against the paper's text, and the lookup's errors.

The schema tests always run. The text tests read the shared plain-text copy of the paper and
skip only when that file is missing."""

import math
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from ser_lib.analysis.paper_numbers import (CSV_PATH, TABLES, PaperLookupError, paper_table,
                                            paper_tables, paper_value)
from ser_lib.errors import SerError

ROOT = Path(__file__).resolve().parents[1]
PAPER = (ROOT.parent / "shared" / "paper" / "000_a694a087d920bc74.txt").resolve()


def raw_csv() -> pd.DataFrame:
    """The file as strings: values exactly as printed in it."""
    return pd.read_csv(CSV_PATH, dtype=str, keep_default_na=False)


# ---- schema: never skipped ---------------------------------------------------------------

def test_columns_and_every_row_is_well_formed():
    frame = raw_csv()
    assert list(frame.columns) == ["table", "row", "column", "value", "unit", "note"]
    assert set(frame["table"]) <= set(TABLES), f"unknown tables: {set(frame['table']) - set(TABLES)}"
    for i, r in frame.iterrows():
        where = f"paper_numbers.csv line {i + 2} ({r['table']}, {r['row']!r}, {r['column']!r})"
        assert r["row"].strip() and r["column"].strip(), f"{where}: empty row or column label"
        assert math.isfinite(float(r["value"])), f"{where}: value {r['value']!r} is not finite"


def test_no_duplicate_cell():
    frame = raw_csv()
    duplicated = frame[frame.duplicated(["table", "row", "column"], keep=False)]
    assert duplicated.empty, f"cells given twice:\n{duplicated}"


def test_every_table_is_there_with_its_size():
    # 8 settings, 2 × 5 sessions, 25 reported cells, 2 × 4, 6, 4 lengths × 5, 4 variants × 2 × 11,
    # 2 halves × 10 × 2, 3 loss pairs × 2 × 11
    sizes = {"I": 8, "II": 10, "III": 25, "IV": 8, "V": 6, "VI": 20, "VII": 88, "VIII": 40, "IX": 66}
    assert paper_tables() == list(TABLES)
    assert {t: len(paper_table(t)) for t in TABLES} == sizes


def test_the_same_model_agrees_across_tables():
    # The full model at α = 0.3, β = 0.1 with both losses is one row of Tables III, VII, VIII and IX;
    # a value filed under the wrong column would break this.
    for metric in ("WA", "UA"):
        same = {paper_value("III", "Proposed model (ours)", metric),
                paper_value("VII", "Spatial-temporal multi-fusion model", metric),
                paper_value("VIII", "α = 0.3 (β = 0.1)", metric),
                paper_value("VIII", "β = 0.1 (α = 0.3)", metric),
                paper_value("IX", "L_cor and L_Ic", metric)}
        assert len(same) == 1, f"{metric}: {same}"
    assert round(paper_value("IV", "UA", "Mean"), 1) == paper_value("III", "Proposed model (ours)", "UA")


def test_paper_table_keeps_paper_order():
    table = paper_table("VII")
    assert list(dict.fromkeys(table["row"])) == ["Spatial-only model", "Temporal-only model",
                                                 "Spatial-temporal integrated model",
                                                 "Spatial-temporal multi-fusion model"]
    assert list(table["column"][:4]) == ["WA, fold 1", "UA, fold 1", "WA, fold 2", "UA, fold 2"]
    assert table["value"].dtype == float


# ---- the lookup's errors -----------------------------------------------------------------

def test_a_wrong_row_names_the_row_and_lists_the_rows():
    with pytest.raises(PaperLookupError) as error:
        paper_value("VII", "Integrated", "UA")
    message = str(error.value)
    assert "'Integrated'" in message and "Table VII" in message
    assert "'Spatial-temporal integrated model'" in message  # the rows it has
    assert isinstance(error.value, KeyError) and isinstance(error.value, SerError)


def test_a_wrong_column_or_table_says_what_there_is():
    with pytest.raises(PaperLookupError, match=r"no column 'F1'.*'WA', 'UA'"):
        paper_value("III", "Proposed model (ours)", "F1")
    with pytest.raises(PaperLookupError, match=r"no Table 'X'.*I, II, III"):
        paper_table("X")


# ---- against the paper's text: skipped only without the shared paper file -----------------

@pytest.fixture(scope="module")
def paper_lines() -> list[str]:
    if not PAPER.exists():
        pytest.skip(f"the paper's text is not at {PAPER} (shared/paper beside the repository); "
                    "the values cannot be checked against it")
    return PAPER.read_text(encoding="utf-8").splitlines()


def table_block(lines: list[str], table: str) -> list[list[str]]:
    """The tab-separated lines printed right after the caption "TABLE <table>:", split into cells."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"TABLE {table}:"))
    block = []
    for line in lines[start + 1:]:
        if "\t" in line:
            block.append(line.split("\t"))
        elif block:  # the first line without a tab after the table ends it
            break
    return block


NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e-\d+)?")
LABEL_CELLS = {"VIII": {0, 3}}  # cells holding row labels, not values (VIII: α and β side by side)


def block_numbers(block: list[list[str]], table: str) -> Counter:
    """Every number printed in the table's value cells, as printed ("$1e - 5$" read as "1e-5")."""
    found = Counter()
    for cells in block:
        for k, cell in enumerate(cells):
            cell = cell.replace(" ", "").strip("$")
            if k not in LABEL_CELLS.get(table, {0}) and re.fullmatch(r"[\d.,±\[\]e\-]*", cell):
                found.update(NUMBER.findall(cell))
    return found


@pytest.mark.parametrize("table", TABLES)
def test_each_table_holds_exactly_the_papers_values(paper_lines, table):
    # The multiset of printed numbers in the table's cells equals the file's values for it:
    # a typo, a missing value or an extra one fails here.
    printed = block_numbers(table_block(paper_lines, table), table)
    ours = Counter(raw_csv().query("table == @table")["value"])
    assert ours == printed, (f"Table {table}: only in the file {dict(ours - printed)}, "
                             f"only in the paper {dict(printed - ours)}")


def test_every_value_is_printed_in_the_paper(paper_lines):
    text = re.sub(r"(\d)e - (\d)", r"\1e-\2", "\n".join(paper_lines))  # Table I prints $1e - 5$
    missing = [v for v in raw_csv()["value"] if not re.search(rf"(?<![\d.]){re.escape(v)}(?!\d)", text)]
    assert not missing, f"values not in the paper's text: {missing}"


# (table, row, column, first cell of the paper's line, index of the cell on that line)
SPOT_CHECKS = [
    ("I", "Weight decay", "Value", "Weight decay", 1),
    ("II", "S_B", "Session 4", "S_B", 4),
    ("III", "Meta-learning (2020)", "UA", "Meta-learning (2020) [34]", 5),
    ("IV", "UA", "95% CI high", "UA", 3),
    ("V", "Precision (weighted)", "Value", "Precision (weighted)", 1),
    ("VI", "1.94 s", "FLOPs", "1.94", 1),
    ("VII", "Temporal-only model", "UA", "Average", 4),
    ("VII", "Spatial-temporal integrated model", "UA", "Average", 6),
    ("VII", "Spatial-temporal multi-fusion model", "UA", "Average", 8),
    ("VII", "Spatial-only model", "WA, fold 10", "10", 1),
    ("VIII", "β = 0.3 (α = 0.3)", "UA", "0.3", 5),
    ("IX", "L_Ic and L_Ic", "WA, fold 6", "6", 3),
]


@pytest.mark.parametrize("table, row, column, line_label, cell", SPOT_CHECKS)
def test_spot_values_sit_in_their_cell_of_the_table(paper_lines, table, row, column, line_label, cell):
    frame = raw_csv()
    printed = frame.query("table == @table and row == @row and column == @column")["value"].item()
    block = table_block(paper_lines, table)
    assert printed in "\n".join("\t".join(c) for c in block), f"{printed} not in Table {table}"
    line = next(c for c in block if c[0] == line_label)
    assert printed in NUMBER.findall(line[cell]), (  # a cell may hold two: "[68.91, 73.69]"
        f"Table {table}, {row!r}, {column!r}: the file has {printed}, the paper's line {line} "
        f"has {line[cell]!r} in that cell")
