"""Experiments: grids of runs, sweeps on Ray Tune, and the report over them."""
