"""Corpus manifest builders: one module per corpus (EmoDB, IEMOCAP, the synthetic corpus)."""
