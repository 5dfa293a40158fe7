"""Figures shared by the CLI and the notebooks. Each function draws on a matplotlib Axes
(or makes a figure) and `save_figure` writes it atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .atomic import atomic_write_bytes

SUBSET_COLORS = {"ambiguous": "0.55", "dropped": "0.85"}


def save_figure(figure: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save `figure` atomically (PNG, SVG or PDF by the suffix) and close it."""
    path = Path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight",
                   metadata={"Software": None} if path.suffix in ("", ".png") else None)
    atomic_write_bytes(path, buffer.getvalue())
    plt.close(figure)
    return path


def plot_partition(summary: dict[str, Any], ax: plt.Axes | None = None) -> plt.Axes:
    """Stacked bars per speaker: clear samples per class, then ambiguous and dropped (Table II)."""
    classes = summary["classes"]
    speakers = list(summary["by_speaker"])
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.6 * len(speakers) + 2), 4))
    bottom = np.zeros(len(speakers))
    for name in classes:
        counts = np.array([summary["by_speaker"][s]["clear_per_class"][name] for s in speakers])
        ax.bar(speakers, counts, bottom=bottom, label=f"clear: {name}")
        bottom += counts
    for subset, color in SUBSET_COLORS.items():
        counts = np.array([summary["by_speaker"][s][subset] for s in speakers])
        ax.bar(speakers, counts, bottom=bottom, label=subset, color=color, hatch="//" if subset == "ambiguous" else None)
        bottom += counts
    ax.set_ylabel("utterances")
    ax.set_title(f"Clear / ambiguous partition ({summary['total']} utterances, "
                 f"{100 * summary['ambiguous_fraction']:.1f}% ambiguous)")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize="small", ncol=2)
    return ax


def plot_soft_labels(soft: np.ndarray, classes, ax: plt.Axes | None = None, titles=None) -> plt.Axes:
    """Grouped bars of a few soft labels (rows of `soft`), one group per class."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    width = 0.8 / len(soft)
    x = np.arange(len(classes))
    for i, row in enumerate(soft):
        ax.bar(x + i * width, row, width, label=None if titles is None else titles[i])
    ax.set_xticks(x + 0.4 - width / 2, classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    if titles is not None:
        ax.legend(fontsize="small")
    return ax
