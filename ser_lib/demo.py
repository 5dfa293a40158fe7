"""The main job (`ser demo`; `make demo` adds `--set model.encoder_mode=frozen`): synthetic
corpus → partition → the method and its no-correction baseline on the same LOSO folds → results,
a paired comparison and figures.

The comparison is paired by fold: correction minus no correction per test speaker, the mean
with its 95% t-interval and a Wilcoxon signed-rank p-value (`metrics.paired_difference`), written
to `comparison.json`. The baseline reuses the method's stage 1 (`share_stage1`): stage 1 trains
on clear samples only, where α and the ambiguous terms do nothing, so it is the same model, and
the demo fits twice the folds into its time.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from .analysis import runs
from .analysis.drift import label_drift_curve
from .analysis.embeddings import tsne_of_run
from .analysis.metrics import paired_difference
from .analysis.plots import plot_confusion, plot_label_drift, plot_partition, plot_tsne, run_title, save_figure
from .analysis.results import format_comparison
from .config import Config
from .data import labels
from .data.labels import Partition
from .data.corpora.prepare import prepare_corpus
from .files import atomic_write_bytes, atomic_write_json, atomic_write_text
from .method.presets import apply_preset
from .notebook import with_first_folds
from .train.algorithm import STAGE1
from .train.loso import run_loso

COMPARISON_JSON = "comparison.json"
BASELINE = "soft-static"


def write_run_figures(run_dir: str | Path, figures_dir: str | Path, results: dict, config: Config,
                      prefix: str = "") -> list[Path]:
    """Confusion matrix (Fig. 5) and t-SNE of the fused embeddings (Fig. 6) of a run."""
    classes = results["classes"]
    figures_dir = Path(figures_dir)
    confusion = plot_confusion(np.array(results["confusion"]), classes)
    confusion.set_title(f"{run_title(run_dir, config)}\nWA {results['wa']:.1f}%  UA {results['ua']:.1f}% "
                        f"over {len(results['folds'])} fold(s)", fontsize="medium")
    paths = [save_figure(confusion.figure, figures_dir / f"{prefix}confusion.png")]
    points, classes_idx, speaker = tsne_of_run(run_dir)
    tsne = plot_tsne(points, classes_idx, classes,
                     title=f"t-SNE of the test embeddings, fold {speaker}\n{run_title(run_dir, config)}")
    paths.append(save_figure(tsne.figure, figures_dir / f"{prefix}tsne.png"))
    return paths


def write_partition(parted: Partition, figures_dir: Path) -> None:
    """Table II for the corpus: printed, as Markdown and as a figure."""
    summary = labels.summarize(parted)
    print(labels.format_table(summary))
    atomic_write_text(figures_dir / "partition_table.md", "# Clear / ambiguous partition (Table II style)\n\n"
                      + labels.format_table(summary, markdown=True) + "\n")
    save_figure(plot_partition(summary).figure, figures_dir / "partition.png")


def run_demo(config: Config, data_dir: str | Path, run_dir: str | Path, figures_dir: str | Path,
             num_folds: int = 4, progress: bool = True) -> dict:
    """Train the method with correction and the no-correction baseline (α=0) on the first
    `num_folds` LOSO folds of the synthetic corpus; print both and their paired difference,
    write results, `comparison.json` and figures. Returns the comparison."""
    started = time.perf_counter()
    run_dir, figures_dir = Path(run_dir), Path(figures_dir)
    manifest_path = prepare_corpus("synthetic", data_dir, size=config.synth.size, seed=config.synth.seed,
                                   annotator_temperature=config.synth.annotator_temperature,
                                   annotator_confusion=config.synth.annotator_confusion,
                                   progress=progress)
    parted = labels.load_partition(manifest_path, config.data)
    write_partition(parted, figures_dir)

    config = with_first_folds(config, parted, num_folds)
    remove_other_folds(run_dir, config.eval.folds)  # a demo with more folds before must not leak into the figures
    baseline_config = apply_preset(config, BASELINE)
    corrected = run_loso(config, manifest_path, run_dir, progress=progress)
    share_stage1(run_dir, run_dir / BASELINE, config.eval.folds)
    baseline = run_loso(baseline_config, manifest_path, run_dir / BASELINE, resume=True, progress=progress)

    print("\n" + format_comparison(corrected, baseline, (f"correction (α={config.loss.alpha:g})", "no correction (α=0)")))
    comparison = paired_comparison(corrected, baseline)
    atomic_write_json(run_dir / COMPARISON_JSON, comparison)
    print(comparison["verdict"])
    if "js_corrected_to_true" in corrected:
        print(f"\nJS divergence of the ambiguous training labels to the truth: observed "
              f"{corrected['js_observed_to_true']:.4f}, corrected {corrected['js_corrected_to_true']:.4f} bits")
    figures = write_run_figures(run_dir, figures_dir, corrected, config)
    drift = plot_label_drift({f"correction (α={config.loss.alpha:g})": label_drift_curve(run_dir),
                              "no correction (α=0)": label_drift_curve(run_dir / BASELINE)})
    drift.set_title(f"Ambiguous training labels vs the true distributions\n{run_dir.as_posix()}, "
                    f"β={config.loss.beta:g}, mean over {len(config.eval.folds)} folds", fontsize="medium")
    figures.append(save_figure(drift.figure, figures_dir / "label_drift.png"))
    # `ser predict` without --checkpoint uses the demo's model: the first fold's.
    atomic_write_bytes(run_dir / runs.MODEL, (runs.fold_dirs(run_dir)[0] / runs.MODEL).read_bytes())
    print(f"\nwrote {run_dir / runs.RESULTS_JSON}, {run_dir / COMPARISON_JSON} and "
          f"{', '.join(str(p) for p in figures)} in {time.perf_counter() - started:.0f} s")
    return comparison


def remove_other_folds(run_dir: Path, speakers) -> None:
    """Delete the run's fold folders of other test speakers (left by a demo with other folds):
    the figures read every fold folder of a run."""
    for fold in Path(run_dir).glob(f"{runs.FOLD_PREFIX}*"):
        if runs.fold_speaker(fold) not in speakers:
            shutil.rmtree(fold)


def share_stage1(source_run: Path, target_run: Path, speakers) -> None:
    """Start the target run's folds from the source run's finished stage 1 (its checkpoint):
    valid when the two configs differ only in what stage 1 never uses (α, β and the ambiguous
    samples' terms: stage 1 sees clear samples only). The target run's old folds are removed."""
    shutil.rmtree(target_run, ignore_errors=True)
    for speaker in speakers:
        checkpoint = runs.stage_checkpoint(runs.fold_dir(source_run, speaker), STAGE1)
        if checkpoint.exists():
            destination = runs.stage_checkpoint(runs.fold_dir(target_run, speaker), STAGE1)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(checkpoint, destination)


def paired_comparison(corrected: dict, baseline: dict) -> dict:
    """Correction minus no correction, paired by test speaker: WA and UA differences with 95%
    t-intervals (none with fewer than 3 folds) and Wilcoxon p-values, and a plain verdict."""
    by_speaker = {f["speaker"]: f for f in baseline["folds"]}
    folds = [f for f in corrected["folds"] if f["speaker"] in by_speaker]
    result: dict = {"method": "paper", "baseline": BASELINE, "folds": [f["speaker"] for f in folds],
                    "n_pairs": len(folds)}
    for key in ("wa", "ua"):
        d = paired_difference([f[key] for f in folds], [by_speaker[f["speaker"]][key] for f in folds])
        result[f"delta_{key}"], result[f"delta_{key}_ci"] = d["delta"], d["ci95"] and list(d["ci95"])
        result[f"p_value_{key}"] = d["p_value"]
    result["p_value"] = result["p_value_ua"]  # UA is the paper's headline metric
    ci, p = result["delta_ua_ci"], result["p_value"]
    result["significant"] = p is not None and p < 0.05
    if not ci:
        verdict = f"Only {len(folds)} paired fold(s): too few for a confidence interval; no conclusion."
    else:
        verdict = (f"Correction minus no correction over {len(folds)} paired folds: ΔUA {result['delta_ua']:+.2f} points, "
                   f"95% CI [{ci[0]:+.2f}, {ci[1]:+.2f}] ({ci[1] - ci[0]:.1f} points wide), Wilcoxon p = {p:.3g}: "
                   + ("significant at the 5% level." if result["significant"] else "not significant at the 5% level."))
        if 2 / 2 ** len(folds) >= 0.05:
            verdict += (f" (With {len(folds)} pairs the smallest two-sided Wilcoxon p is {2 / 2 ** len(folds):.3g}: "
                        "more folds or seeds are needed for a test at 5%; `ser sweep` runs them.)")
    result["verdict"] = verdict
    return result
