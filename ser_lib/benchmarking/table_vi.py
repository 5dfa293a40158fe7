"""The paper's Table VI (inference cost of the full model), read from `paper_numbers.csv`.

Its "FLOPs" are most likely MACs: it gives 6.95 G "FLOPs" at 1 s, and wav2vec2-base alone
measures 6.91 GMACs (13.8 GFLOPs) at 1 s here; the full model with it, 6.93 GMACs at 1 s and
13.61 GMACs at 1.94 s, beside Table VI's numbers at both lengths (`report` prints them so).
"""

from __future__ import annotations

from ..analysis.paper_numbers import paper_table


def paper_table_vi() -> dict[float, dict[str, float]]:
    """Table VI of the paper from `paper_numbers.csv`: {input length in s: {column: value}},
    its columns "FLOPs" (G), "Latency" and "Latency ±" (ms), "RTF" and "Peak Mem" (GB)."""
    table = paper_table("VI")
    return {float(row.removesuffix(" s")): dict(zip(cells["column"], cells["value"]))
            for row, cells in table.groupby("row", sort=False)}


PAPER_TABLE_VI = paper_table_vi()
PAPER_LENGTHS = tuple(PAPER_TABLE_VI)  # the paper's input lengths, in its order
PAPER_SETUP = "RTX 3090, batch 1, full model, 100 runs"  # Table VI's caption
