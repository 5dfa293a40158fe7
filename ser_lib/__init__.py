"""ser-workbench: speech emotion recognition from ambiguous speech.

Each module maps to one part of the method (see README.md for the map):
labels (eqs. 1, 3, 5), correction (eq. 6), losses (eqs. 7-11), features (§V-C),
corpora (manifests), config (one typed configuration for CLI, notebooks and sweeps).
"""

__version__ = "0.1.0"
