"""Leave-one-speaker-out runs and the demo: the glue between training, results and figures.

A run folder holds one ``fold-<speaker>/`` per fold (checkpoints, ``model.pt``,
``label_history.npz``, ``predictions.csv``, ``embeddings.npz``, ``fold_result.json``) and,
once all folds are done, ``results.json``, ``results.md`` and ``predictions.csv`` over folds.
With ``resume=True`` finished folds are read back and an interrupted fold continues from
its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from tqdm.auto import tqdm

from . import labels
from .atomic import atomic_write_bytes, atomic_write_text
from .cache import FeatureCache
from .config import Config, load_config
from .errors import ConfigError
from .corpora.prepare import prepare_corpus
from .folds import loso_folds
from .label_store import LabelStore
from .manifest import read_manifest
from .metrics import aggregate_folds
from .plots import plot_confusion, plot_label_drift, plot_partition, plot_tsne, save_figure
from .results import format_comparison, write_results
from .training import train_fold

FOLD_PREFIX = "fold-"


def load_partition(manifest_path: str | Path, config: Config) -> pd.DataFrame:
    return labels.partition(read_manifest(manifest_path, check_audio=True), config.data)


def run_loso(config: Config, manifest_path: str | Path, run_dir: str | Path, resume: bool = False,
             progress: bool = True) -> dict:
    """Train and evaluate every fold of `config.eval.folds` (all speakers when empty)."""
    run_dir = Path(run_dir)
    parted = load_partition(manifest_path, config)
    folds = loso_folds(parted, config.eval)
    _check_run_config(run_dir, config, resume)
    cache = FeatureCache(config.cache_dir)
    records = []
    for fold in tqdm(folds, desc="LOSO folds", disable=not progress or len(folds) == 1):
        fold_dir = run_dir / f"{FOLD_PREFIX}{fold.test_speaker}"
        finished = fold_dir / "fold_result.json"
        if resume and finished.exists():
            records.append(json.loads(finished.read_text()))
            continue
        if progress:
            tqdm.write(f"fold {fold.test_speaker}: {fold.describe()}")
        records.append(train_fold(config, parted, fold, fold_dir, cache, resume=resume, progress=progress))
    predictions = pd.concat([pd.read_csv(run_dir / f"{FOLD_PREFIX}{r['speaker']}" / "predictions.csv",
                                         dtype={"speaker": str, "fold": str}) for r in records])
    summary = aggregate_folds(records)
    return write_results(run_dir, summary, [_without_history(r) for r in records], predictions, config)


def _check_run_config(run_dir: Path, config: Config, resume: bool) -> None:
    """A resumed run must use the config it was started with; a fresh run records its config."""
    recorded = run_dir / "config.json"
    if resume and recorded.exists():
        # Folds may differ: folds of one run can be trained by separate jobs, then aggregated.
        before, now = json.loads(recorded.read_text()), json.loads(config.to_json())
        for tree in (before, now):
            tree.get("eval", {}).pop("folds", None)
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            raise ConfigError(f"{run_dir} was started with a different config (sections {changed} differ); "
                              "resume it with the same settings or choose another output folder")
    atomic_write_text(recorded, config.to_json() + "\n")


def _without_history(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "history"}


def fold_dirs(run_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob(f"{FOLD_PREFIX}*") if (p / "fold_result.json").exists())


def label_drift_curve(run_dir: str | Path, kind: str = "corrected") -> list[tuple[int, float]]:
    """Mean JS divergence of the ambiguous training samples' corrected labels y_c (or, with
    kind="predicted", predictions y_g) to the truth per epoch, averaged over folds; epoch -1 is
    the observed label. Empty without true distributions."""
    tables = [LabelStore.load(d / "label_history.npz").divergence_to_truth(kind) for d in fold_dirs(run_dir)]
    tables = [t for t in tables if len(t)]
    if not tables:
        return []
    mean = pd.concat(tables).groupby("epoch")["js_to_true"].mean()
    return [(int(epoch), float(value)) for epoch, value in mean.items()]


def fold_embeddings(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The fused test embeddings of all finished folds and their true class indices."""
    parts = [np.load(d / "embeddings.npz") for d in fold_dirs(run_dir)]
    return np.concatenate([p["embeddings"] for p in parts]), np.concatenate([p["labels"] for p in parts])


def tsne_of_run(run_dir: str | Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of the test embeddings of all folds (scikit-learn), with their class indices."""
    embeddings, classes = fold_embeddings(run_dir)
    perplexity = float(min(30.0, max(2.0, (len(embeddings) - 1) / 3)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings)
    return points, classes


def embedding_separation(run_dir: str | Path) -> float:
    """Silhouette score of the test embeddings by true class (scikit-learn): how well the
    classes separate in the space the t-SNE figure shows, measured without t-SNE."""
    embeddings, classes = fold_embeddings(run_dir)
    if len(np.unique(classes)) < 2:
        return float("nan")
    return float(silhouette_score(embeddings, classes))


# Fig. 6 and Table IX: loss terms per subset (clear / ambiguous) and correction on or off.
# Keys are run folder names; notebooks 03 and 04 train "correction" and "no_correction".
LOSS_SETTINGS = {
    "cor_cor": ("(a) cor / cor", {"loss.clear_terms": "cor", "loss.ambiguous_terms": "cor"}),
    "ic_ic": ("(b) ic / ic", {"loss.clear_terms": "ic", "loss.ambiguous_terms": "ic"}),
    "correction": ("(c) cor / cor+ic", {}),
    "no_correction": ("(d) no correction (α=0)", {"loss.alpha": 0.0}),
}


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


def with_first_folds(config: Config, parted: pd.DataFrame, num_folds: int) -> Config:
    """A copy of `config` whose `eval.folds` are the first `num_folds` sorted speakers, unless
    it names folds already. The demo and the notebooks choose their folds this way."""
    config = copy.deepcopy(config)
    if not config.eval.folds:
        config.eval.folds = tuple(sorted(parted["speaker"].astype(str).unique())[:num_folds])
    return config


def notebook_config(profile: str, overrides: dict, parted: pd.DataFrame, num_folds: int, **changes) -> Config:
    """The config of a notebook's training run: profile <- overrides <- `changes` (dotted keys),
    on the first `num_folds` speakers. Notebooks 03-05 build their runs with it, so a run
    trained by one notebook is found (and resumed) by the next."""
    return with_first_folds(load_config(profile, overrides={**overrides, **changes}), parted, num_folds)


def run_demo(config: Config, data_dir: str | Path, run_dir: str | Path, figures_dir: str | Path,
             num_folds: int = 2, progress: bool = True) -> dict:
    """The main job: synthetic corpus → partition → two-stage training with correction on a few
    LOSO folds, next to a no-correction run (α=0) on the same folds → results and figures."""
    started = time.perf_counter()
    run_dir, figures_dir = Path(run_dir), Path(figures_dir)
    manifest_path = prepare_corpus("synthetic", data_dir, size=config.synth.size, seed=config.synth.seed,
                                   progress=progress)
    parted = load_partition(manifest_path, config)
    summary = labels.summarize(parted)
    print(labels.format_table(summary))
    atomic_write_text(figures_dir / "partition_table.md", "# Clear / ambiguous partition (Table II style)\n\n"
                      + labels.format_table(summary, markdown=True) + "\n")
    save_figure(plot_partition(summary).figure, figures_dir / "partition.png")

    config = with_first_folds(config, parted, num_folds)
    baseline_config = copy.deepcopy(config)
    baseline_config.loss.alpha = 0.0
    corrected = run_loso(config, manifest_path, run_dir, progress=progress)
    baseline = run_loso(baseline_config, manifest_path, run_dir / "no_correction", progress=progress)

    print("\n" + format_comparison(corrected, baseline, (f"correction (α={config.loss.alpha:g})", "no correction (α=0)")))
    if "js_corrected_to_true" in corrected:
        print(f"\nJS divergence of the ambiguous training labels to the truth: observed "
              f"{corrected['js_observed_to_true']:.4f}, corrected {corrected['js_corrected_to_true']:.4f} bits")
    figures = write_run_figures(run_dir, figures_dir, corrected)
    drift = plot_label_drift({"correction": label_drift_curve(run_dir),
                              "no correction (α=0)": label_drift_curve(run_dir / "no_correction")})
    drift.set_title("Ambiguous training labels vs the true distributions")
    figures.append(save_figure(drift.figure, figures_dir / "label_drift.png"))
    # `ser predict` without --checkpoint uses the demo's model: the first fold's.
    atomic_write_bytes(run_dir / "model.pt", (fold_dirs(run_dir)[0] / "model.pt").read_bytes())
    print(f"\nwrote {run_dir / 'results.json'} and {', '.join(str(p) for p in figures)} "
          f"in {time.perf_counter() - started:.0f} s")
    return corrected
