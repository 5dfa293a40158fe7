"""Training and evaluation: Algorithm 1 for one fold, its stages, LOSO folds and runs."""
