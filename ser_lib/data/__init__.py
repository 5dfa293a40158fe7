"""Data (§III-B, §V-C): manifests, labels and the partition, audio, filterbanks, the one
utterance → model inputs recipe, the feature cache, training samples and batches, corpora."""
