"""What a run leaves behind, read back: its folder layout, metrics and results, label drift,
embeddings, figures and the interactive explorer."""
