"""The spatial-temporal model (§IV): spatial branch, temporal branch, fusion, classifier."""

from .ser_model import SERModel, TemporalClassifier, count_parameters, load_model, save_model

__all__ = ["SERModel", "TemporalClassifier", "count_parameters", "load_model", "save_model"]
