"""The fused embeddings of a run's test speakers (Fig. 6): t-SNE and class separation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from .runs import fold_embeddings


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
