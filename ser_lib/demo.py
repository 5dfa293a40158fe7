"""The main job (`make demo` = `ser demo`): synthetic corpus → partition → the method and its
no-correction baseline on the same LOSO folds → results and figures."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import runs
from .analysis.drift import label_drift_curve
from .analysis.embeddings import tsne_of_run
from .analysis.plots import plot_confusion, plot_label_drift, plot_partition, plot_tsne, save_figure
from .analysis.results import format_comparison
from .config import Config
from .data import labels
from .data.corpora.prepare import prepare_corpus
from .files import atomic_write_bytes, atomic_write_text
from .method.presets import apply_preset
from .notebook import with_first_folds
from .train.loso import run_loso


def write_run_figures(run_dir: str | Path, figures_dir: str | Path, results: dict, prefix: str = "") -> list[Path]:
    """Confusion matrix (Fig. 5) and t-SNE of the fused embeddings (Fig. 6) of a run."""
    classes = results["classes"]
    figures_dir = Path(figures_dir)
    confusion = plot_confusion(np.array(results["confusion"]), classes)
    confusion.set_title(f"WA {results['wa']:.1f}%  UA {results['ua']:.1f}% over {len(results['folds'])} fold(s)")
    paths = [save_figure(confusion.figure, figures_dir / f"{prefix}confusion.png")]
    points, classes_idx = tsne_of_run(run_dir)
    tsne = plot_tsne(points, classes_idx, classes, title="t-SNE of the test embeddings")
    paths.append(save_figure(tsne.figure, figures_dir / f"{prefix}tsne.png"))
    return paths


def write_partition(parted: pd.DataFrame, figures_dir: Path) -> None:
    """Table II for the corpus: printed, as Markdown and as a figure."""
    summary = labels.summarize(parted)
    print(labels.format_table(summary))
    atomic_write_text(figures_dir / "partition_table.md", "# Clear / ambiguous partition (Table II style)\n\n"
                      + labels.format_table(summary, markdown=True) + "\n")
    save_figure(plot_partition(summary).figure, figures_dir / "partition.png")


def run_demo(config: Config, data_dir: str | Path, run_dir: str | Path, figures_dir: str | Path,
             num_folds: int = 2, progress: bool = True) -> dict:
    """Train the method with correction and the no-correction baseline (α=0) on the first
    `num_folds` LOSO folds of the synthetic corpus; print both, write results and figures."""
    started = time.perf_counter()
    run_dir, figures_dir = Path(run_dir), Path(figures_dir)
    manifest_path = prepare_corpus("synthetic", data_dir, size=config.synth.size, seed=config.synth.seed,
                                   progress=progress)
    parted = labels.load_partition(manifest_path, config.data)
    write_partition(parted, figures_dir)

    config = with_first_folds(config, parted, num_folds)
    baseline_config = apply_preset(config, "soft-static")
    corrected = run_loso(config, manifest_path, run_dir, progress=progress)
    baseline = run_loso(baseline_config, manifest_path, run_dir / "soft-static", progress=progress)

    print("\n" + format_comparison(corrected, baseline, (f"correction (α={config.loss.alpha:g})", "no correction (α=0)")))
    if "js_corrected_to_true" in corrected:
        print(f"\nJS divergence of the ambiguous training labels to the truth: observed "
              f"{corrected['js_observed_to_true']:.4f}, corrected {corrected['js_corrected_to_true']:.4f} bits")
    figures = write_run_figures(run_dir, figures_dir, corrected)
    drift = plot_label_drift({"correction": label_drift_curve(run_dir),
                              "no correction (α=0)": label_drift_curve(run_dir / "soft-static")})
    drift.set_title("Ambiguous training labels vs the true distributions")
    figures.append(save_figure(drift.figure, figures_dir / "label_drift.png"))
    # `ser predict` without --checkpoint uses the demo's model: the first fold's.
    atomic_write_bytes(run_dir / runs.MODEL, (runs.fold_dirs(run_dir)[0] / runs.MODEL).read_bytes())
    print(f"\nwrote {run_dir / runs.RESULTS_JSON} and {', '.join(str(p) for p in figures)} "
          f"in {time.perf_counter() - started:.0f} s")
    return corrected
