"""Figures shared by the CLI, the notebooks and the widgets, as pure functions of their data.

Each function draws on a given matplotlib Axes or makes its own `matplotlib.figure.Figure`.
They never touch pyplot's global state, so widget callbacks may draw on any thread (ipykernel
runs them on "subshell" threads); a notebook shows a figure with `display(figure)`.
`save_figure` writes one atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from ..files import atomic_write_bytes

SUBSET_COLORS = {"ambiguous": "0.55", "dropped": "0.85"}


def new_axes(figsize: tuple[float, float]) -> Axes:
    """Axes of a new figure that pyplot does not manage (thread-safe, never shown twice)."""
    return Figure(figsize=figsize).subplots()


def figure_bytes(figure: Figure, format: str = "png", dpi: int = 120) -> bytes:
    """`figure` encoded as `format`, cropped to what it draws: tick labels and legends outside the axes stay in."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format, dpi=dpi, bbox_inches="tight",
                   metadata={"Software": None} if format == "png" else None)
    return buffer.getvalue()


def png_bytes(figure: Figure, dpi: int = 120) -> bytes:
    return figure_bytes(figure, "png", dpi)


def run_title(run_dir: str | Path, config) -> str:
    """What a figure shows, in its title: the run folder, its correction setting (eqs. 6 and 10) and
    whether the encoder was frozen (not the paper's fine-tuning)."""
    frozen = ", encoder frozen" if config.model.encoder_mode == "frozen" else ""
    return f"{Path(run_dir).as_posix()} (α={config.loss.alpha:g}, β={config.loss.beta:g}{frozen})"


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save `figure` atomically (PNG, SVG or PDF by the suffix)."""
    path = Path(path)
    atomic_write_bytes(path, figure_bytes(figure, path.suffix.lstrip(".") or "png", dpi))
    return path


def plot_partition(summary: dict[str, Any], ax: Axes | None = None) -> Axes:
    """Stacked bars per speaker: clear samples per class, then ambiguous and dropped (Table II)."""
    classes = summary["classes"]
    speakers = list(summary["by_speaker"])
    if ax is None:
        ax = new_axes(figsize=(max(7, 0.6 * len(speakers) + 3.5), 4))
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
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not over them
    return ax


def plot_soft_labels(soft: np.ndarray, classes, ax: Axes | None = None, titles=None) -> Axes:
    """Grouped bars of a few soft labels (rows of `soft`), one group per class."""
    if ax is None:
        ax = new_axes(figsize=(7, 3))
    width = 0.8 / len(soft)
    x = np.arange(len(classes))
    for i, row in enumerate(soft):
        ax.bar(x + i * width, row, width, label=None if titles is None else titles[i])
    ax.set_xticks(x + 0.4 - width / 2, classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    if titles is not None:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars
    return ax


def plot_confusion(confusion, classes, ax: Axes | None = None, normalize: bool = True) -> Axes:
    """Confusion matrix (rows = true class) as in Fig. 5: row-normalised percentages, with counts.

    A row without samples stays blank. With ``normalize=False`` the colours show counts.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    support = counts.sum(axis=1, keepdims=True)
    shares = np.divide(100 * counts, support, out=np.zeros_like(counts), where=support > 0)
    if ax is None:
        ax = new_axes(figsize=(1.1 * len(classes) + 1.5, 1.1 * len(classes) + 1))
    shown = shares if normalize else counts
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=100 if normalize else max(counts.max(), 1))
    for (i, j), count in np.ndenumerate(counts):
        if support[i, 0] == 0:
            continue
        dark = shown[i, j] > 0.6 * image.get_clim()[1]
        ax.text(j, i, f"{shares[i, j]:.1f}%\n({int(count)})", ha="center", va="center", fontsize="small",
                color="white" if dark else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of true class" if normalize else "samples")
    return ax


def plot_learning_curves(history: list[dict], ax: Axes | None = None) -> Axes:
    """Training loss (left axis) and validation WA / UA (right axis) over epochs.

    `history` rows hold stage, epoch, train_loss, val_wa, val_ua. Stages are drawn one after
    the other (stage 2 continues the x axis of stage 1), each as its own line segment; the first
    stage is shaded. The legend sits below the axes, off the data.
    """
    if ax is None:
        ax = new_axes(figsize=(7, 4))
    scores = ax.twinx()
    stages = list(dict.fromkeys(row.get("stage") for row in history))
    start = 0
    for index, stage in enumerate(stages):
        rows = [row for row in history if row.get("stage") == stage]
        x = start + np.arange(len(rows))
        if index % 2 == 0 and len(stages) > 1:  # shading, not text over the title, tells the stages apart
            ax.axvspan(start - 0.5, start + len(rows) - 0.5, color="0.92", zorder=0, label=f"{stage} epochs")
        for axis, key, label, style in ((ax, "train_loss", "train loss", "k-"), (scores, "val_wa", "val WA", "C0o-"),
                                        (scores, "val_ua", "val UA", "C1s-")):
            values = np.array([np.nan if row.get(key) is None else row[key] for row in rows], dtype=np.float64)
            keep = np.isfinite(values)
            axis.plot(x[keep], values[keep], style, markersize=3, label=label if stage == stages[0] else None)
        start += len(rows)
    ax.set_xlabel("epoch (stages in sequence)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss")
    scores.set_ylabel("validation accuracy (%)")
    handles = ax.get_legend_handles_labels()[0] + scores.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize="small", loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncol=len(handles), frameon=False)
    return ax


def plot_label_drift(runs: dict[str, list[tuple[float, float]]], ax: Axes | None = None,
                     ylabel: str = "mean JS divergence to the true label (bits)") -> Axes:
    """One line per run (name -> [(epoch, value), ...]): how far labels are from the truth over epochs."""
    if ax is None:
        ax = new_axes(figsize=(7.5, 3.5))
    for name, points in runs.items():
        epochs, values = zip(*sorted(points)) if points else ((), ())
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch of stage 2")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Epoch -1 of a label store is the observed label y_s, before any correction.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: "y_s" if value == -1 else f"{value:g}"))
    ax.set_ylabel(ylabel)
    highest = max((value for points in runs.values() for _, value in points), default=1.0)
    ax.set_ylim(0, 1.15 * highest if highest > 0 else 1.0)  # room above the highest line: none runs along the edge
    if runs:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def plot_tsne(embedding_2d, labels, classes, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Scatter of 2-D embeddings (e.g. t-SNE of fused features), one colour per class.

    `labels` are class names or indices into `classes`.
    """
    points = np.asarray(embedding_2d, dtype=np.float64)
    labels = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(f"need [N, 2] points and N labels, got {points.shape} and {labels.shape}")
    if ax is None:
        ax = new_axes(figsize=(6.5, 5))
    for k, name in enumerate(classes):
        chosen = labels == (k if np.issubdtype(labels.dtype, np.integer) else name)
        ax.scatter(points[chosen, 0], points[chosen, 1], s=10, alpha=0.7, label=f"{name} ({int(chosen.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize="small", markerscale=1.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- label drift (eq. 6)

LABEL_COLORS = {"observed": "0.6", "corrected": "C0", "predicted": "C1", "true": "C2"}


def plot_sample_labels(labels: Mapping[str, np.ndarray], classes, history: np.ndarray, epochs: list[int],
                       epoch: int | None, title: str) -> Figure:
    """One sample's y_s, y_c, y_g and truth as grouped bars (left; see `drift.sample_labels`)
    next to its corrected label over all epochs (right, `history` [E, K]; dashed: y_s)."""
    figure = Figure(figsize=(9.5, 3.6), layout="constrained")
    bars_ax, history_ax = figure.subplots(1, 2, width_ratios=(1.1, 1))
    if not labels:
        bars_ax.text(0.5, 0.5, "no sample matches the filter", ha="center", va="center")
        return figure
    x = np.arange(len(classes))
    width = 0.8 / len(labels)
    for i, (name, values) in enumerate(labels.items()):
        bars_ax.bar(x + (i - (len(labels) - 1) / 2) * width, values, width, label=name, color=LABEL_COLORS[name])
    bars_ax.set_xticks(x, classes)
    bars_ax.set(ylim=(0, 1), ylabel="probability", title=title)
    # Legends under the axes: above the bars or lines they would hide data.
    bars_ax.legend(fontsize="small", ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    for k, name in enumerate(classes):
        history_ax.plot(epochs, history[:, k], marker="o", markersize=3, color=f"C{k}", label=name)
        history_ax.axhline(labels["observed"][k], color=f"C{k}", lw=0.8, ls="--")
    if epoch is not None:
        history_ax.axvline(epoch, color="k", lw=0.8, ls=":")
    history_ax.set(ylim=(0, 1), title="corrected label y_c per epoch (dashed: y_s)")
    history_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    history_ax.legend(fontsize="small", ncol=len(classes), loc="upper center", bbox_to_anchor=(0.5, -0.12),
                      frameon=False)
    return figure


def plot_filterbank(features: np.ndarray, frame_shift_ms: float, title: str, ax: Axes | None = None) -> Axes:
    """A log-mel filterbank [frames, bins] as an image over time, with a colour bar."""
    if ax is None:
        ax = Figure(figsize=(5, 2.6), layout="constrained").subplots()
    seconds = features.shape[0] * frame_shift_ms / 1000
    image = ax.imshow(np.asarray(features).T, origin="lower", aspect="auto", cmap="magma",
                      extent=(0, seconds, 0, features.shape[1]))
    ax.figure.colorbar(image, ax=ax, label="log energy")
    ax.set(xlabel="s", ylabel="mel bin", title=title)
    return ax


def plot_drift_comparison(corrected: Mapping[str, list], predicted: Mapping[str, list], title: str = "") -> Figure:
    """Mean JS divergence to the truth over epochs, one line per run (`drift.label_drift_curve`):
    of the corrected labels y_c (left) and of the predictions y_g (right); one legend, beside them."""
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    plot_label_drift({n: c for n, c in corrected.items() if c}, ax=left)
    if left.get_legend():
        left.get_legend().remove()
    left.set_title("corrected labels y_c", fontsize="medium")
    plot_label_drift({n: c for n, c in predicted.items() if c}, ax=right)
    right.set_title("predictions y_g", fontsize="medium")
    right.set_ylabel("")
    if title:
        figure.suptitle(title)
    return figure


# The second panel of each pretraining objective: (history key, label) on its left axis, then on a
# right axis of its own (the two have different scales).
_PRETRAINING_PANELS = {
    "hubert": [("accuracy", "masked-frame accuracy"), ("prediction_perplexity", "clusters predicted (perplexity)")],
    "wav2vec2": [("contrastive", "contrastive loss"), ("codevector_perplexity", "codevector perplexity")],
}


def plot_pretraining_curves(history: list[dict], objective: str) -> Figure:
    """A pretraining run's curves against steps: its loss (for TERA, its reconstruction L1 beside the
    L1 of predicting the mean frame; with prosody workers, their MSE beside that of predicting each
    descriptor's mean), what shows whether the objective learns or collapses (masked-frame accuracy and
    cluster usage; the contrastive loss and codebook usage; TERA: the learning rate), and how much
    the encoder's hidden states vary across frames."""
    figure = Figure(figsize=(11, 3.2))
    axes = figure.subplots(1, 3)
    steps = [row["step"] for row in history]
    axes[0].plot(steps, [row["loss"] for row in history], label="loss")
    workers = "prosody_mse" in history[0]
    if objective == "tera":
        if workers:
            axes[0].plot(steps, [row["reconstruction_l1"] for row in history], label="reconstruction L1")
        axes[0].plot(steps, [row["mean_frame_l1"] for row in history], "--", label="mean-frame L1 (baseline)")
    if workers:
        axes[0].plot(steps, [row["prosody_mse"] for row in history], label="prosody workers' MSE")
        axes[0].plot(steps, [row["prosody_mean_mse"] for row in history], ":", label="descriptor means' MSE")
    if objective == "tera" or workers:
        axes[0].legend(fontsize=8)
    axes[0].set(xlabel="step", title=f"{objective}: loss")
    if objective in _PRETRAINING_PANELS:
        (left_key, left_label), (right_key, right_label) = _PRETRAINING_PANELS[objective]
        axes[1].plot(steps, [row.get(left_key, np.nan) for row in history], color="C0")
        axes[1].set_ylabel(left_label, color="C0")
        right = axes[1].twinx()
        right.plot(steps, [row.get(right_key, np.nan) for row in history], color="C1")
        right.set_ylabel(right_label, color="C1")
        axes[1].set(xlabel="step", title="learning and target usage")
    else:
        axes[1].plot(steps, [row["lr"] for row in history])
        axes[1].set(xlabel="step", title="learning rate")
    axes[2].plot(steps, [row.get("frame_std", np.nan) for row in history])
    axes[2].set(xlabel="step", title="hidden-state std across frames")
    figure.tight_layout()
    return figure


def plot_probe_curve(frame, title: str) -> Figure:
    """Linear-probe UA per corpus against encoder parameters (log scale; per encoder when all have one
    size), and, for the pretrained encoders, against their build time: `analysis.probe_curve`'s rows."""
    figure = Figure(figsize=(11, 3.8))
    axes = figure.subplots(1, 2, sharey=True)
    one_size = frame["parameters"].nunique() == 1
    for color, (corpus, rows) in zip(("C0", "C1", "C2", "C3"), frame.groupby("corpus", sort=False)):
        if one_size:
            axes[0].plot(rows["label"], rows["probe_ua"], "o", color=color, label=corpus)
        else:
            _labelled_points(axes[0], rows["parameters"], rows, color)
        pretrained = rows[rows["steps"] > 0]
        _labelled_points(axes[1], pretrained["build_minutes"], pretrained, color, label=corpus)
    if one_size:
        axes[0].tick_params(axis="x", labelrotation=20, labelsize=8)
        axes[0].set(xlabel=f"encoder ({frame['parameters'].iloc[0] / 1e6:.2f} M parameters each)")
    else:
        axes[0].set_xscale("log")
        sizes = sorted(frame["parameters"].unique())
        axes[0].set_xticks(sizes, [f"{n / 1e6:.2f} M" for n in sizes])
        axes[0].xaxis.set_minor_formatter(NullFormatter())
        axes[0].set(xlabel="encoder parameters")
    axes[0].set(ylabel="linear-probe UA (%)", title="every encoder")
    axes[1].set(xlabel="build time (min, pretraining wall clock)", title="pretrained encoders")
    axes[1].legend(fontsize=8, title="corpus")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _labelled_points(ax: Axes, x, rows, color: str, label: str | None = None) -> None:
    ax.scatter(x, rows["probe_ua"], color=color, label=label)
    for xi, (_, row) in zip(x, rows.iterrows()):
        ax.annotate(row["label"], (xi, row["probe_ua"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
