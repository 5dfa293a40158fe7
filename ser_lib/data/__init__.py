"""Data (§III-B, §V-A, §V-C): manifests, labels and the partition, LOSO and K-fold folds, audio,
filterbanks, the one utterance → model inputs recipe, the feature cache, training samples and
batches, corpora."""
