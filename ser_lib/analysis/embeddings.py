"""The fused embeddings of a run's test speakers (Fig. 6): t-SNE and class separation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from .runs import fold_embeddings


def tsne_of_run(run_dir: str | Path, fold: str | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """2-D t-SNE (scikit-learn) of one fold's fused test embeddings: points, class indices, test speaker.

    Each fold has its own model, and embeddings of different models share no space, so folds are
    never pooled. `fold` names the test speaker; by default the fold with the most test utterances.
    """
    folds = fold_embeddings(run_dir)
    if not folds:
        raise ValueError(f"{run_dir}: no finished fold with embeddings")
    if fold is None:
        fold = max(folds, key=lambda speaker: len(folds[speaker][0]))  # ties: the first speaker
    embeddings, classes = folds[fold]
    perplexity = float(min(30.0, max(2.0, (len(embeddings) - 1) / 3)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings)
    return points, classes, fold


def embedding_separation(run_dir: str | Path) -> float:
    """Silhouette score of the test embeddings by true class (scikit-learn), in each fold's own
    model space, averaged over folds: how well the classes separate, measured without t-SNE."""
    scores = [silhouette_score(embeddings, classes) for embeddings, classes in fold_embeddings(run_dir).values()
              if 2 <= len(np.unique(classes)) < len(classes)]
    return float(np.mean(scores)) if scores else float("nan")
