"""The paper's numbers as data: every numeric value of its Tables I–IX, one value per row.

`paper_numbers.csv` beside this module holds them with the columns `table,row,column,value,unit,note`.
Every value was typed from the paper's text (the shared plain-text copy), never from memory;
`tests/test_paper_numbers.py` checks each one against that text. Only numbers are carried over,
not the paper's sentences. Values are written as the paper prints them ("71.30" stays "71.30"
in the file; read back, it is the float 71.3).

Labels are the paper's, shortened where a cell is long:

- `table` is the Roman numeral, "I" to "IX".
- Tables VII and IX give per-fold values: `row` is the variant (VII) or the loss pair (IX), the
  paper's column group, and `column` is "WA"/"UA" for the table's Average row and
  "WA, fold 3"/"UA, fold 3" for a fold. So `paper_value("VII", "Spatial-temporal integrated
  model", "UA")` is the paper's average UA of that variant.
- Table III: a method trained on more than one train set has one row per set,
  e.g. "Soft-target (2018), clear + ambiguous"; `note` says the label type and the train set.
- Table VIII has two halves side by side: rows "α = 0.3 (β = 0.1)" and "β = 0.1 (α = 0.3)".
- A "-" in the paper (no value reported) has no row; Table I's optimizer (Adam) is not a number.

    >>> paper_value("III", "Proposed model (ours)", "UA")
    71.3
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from ..errors import SerError

# Found beside the module, like the shipped encoders (`model/encoder.py`); listed in
# pyproject.toml's package-data so an installed package has it too.
CSV_PATH = Path(__file__).with_name("paper_numbers.csv")
TABLES = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")


class PaperLookupError(SerError, KeyError):
    """A table, row or column that the paper's tables do not have."""

    def __str__(self) -> str:  # KeyError's own __str__ would print the message in quotes
        return str(self.args[0])


@cache
def _numbers() -> pd.DataFrame:
    # keep_default_na=False: an empty unit or note stays "" rather than NaN
    frame = pd.read_csv(CSV_PATH, dtype=str, keep_default_na=False)
    return frame.assign(value=frame["value"].astype(float))


def paper_tables() -> list[str]:
    """The tables present in the file, in paper order."""
    present = set(_numbers()["table"])
    return [t for t in TABLES if t in present]


def paper_table(table: str) -> pd.DataFrame:
    """The values of one table (e.g. "VII"), in paper order, with a fresh 0.. index."""
    rows = _numbers()[_numbers()["table"] == table]
    if rows.empty:
        raise PaperLookupError(f"the paper has no Table {table!r} here; tables: {', '.join(paper_tables())}")
    return rows.reset_index(drop=True)


def _labels(values: pd.Series) -> str:
    return ", ".join(repr(v) for v in dict.fromkeys(values))  # unique, in paper order


def paper_value(table: str, row: str, column: str) -> float:
    """The value of one cell, e.g. `paper_value("VII", "Temporal-only model", "UA")`."""
    rows = paper_table(table)
    in_row = rows[rows["row"] == row]
    if in_row.empty:
        raise PaperLookupError(f"Table {table} has no row {row!r}; its rows: {_labels(rows['row'])}")
    cell = in_row[in_row["column"] == column]
    if cell.empty:
        raise PaperLookupError(f"Table {table}, row {row!r} has no column {column!r}; "
                               f"its columns: {_labels(in_row['column'])}")
    return float(cell["value"].iloc[0])
