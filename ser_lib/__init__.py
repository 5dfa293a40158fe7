"""ser-workbench: speech emotion recognition from ambiguous speech.

The packages follow the method (the book's "Where things are" page, book/reference/modules.md, maps each equation to a module):
`data` (manifests, labels and the partition, audio, filterbanks, samples), `model` (spatial and
temporal branches, fusion), `method` (correction, losses, label store, presets), `train`
(Algorithm 1, LOSO) and `analysis` (run folders, metrics, results, drift, figures, widgets);
`config` is the one typed configuration for the CLI, the notebooks and sweeps.
"""

__version__ = "0.1.0"
