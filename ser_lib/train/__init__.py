"""Training and evaluation: Algorithm 1 for one fold, a fold's data, its stages and checkpoints, a
LOSO run over folds, and pretraining."""
