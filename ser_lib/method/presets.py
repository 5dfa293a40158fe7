"""Named methods and experiment settings: one spelling each, as overrides of the typed config.

A preset is what a table row or figure panel changes against the defaults, and its name is the
run folder's. The methods compared on the same folds (`ser methods` lists them):

- `paper`: the method, eqs. 6-11 with the profile's α and β (0.3 and 0.1 by default).
- `paper-running`: the same, with each corrected label persisting across epochs
  (`correction.update=running`).
- `soft-static`: the observed soft labels (eq. 5) without correction, α = 0 (Fig. 6 (d)).
- `clear-hard`: common SER practice, hard consensus labels on clear samples only.
- `plurality-hard`: every sample with the hard argmax of its votes, plain weighted
  cross-entropy (`method.targets`).
- `bootstrap-soft` and `bootstrap-hard` (Reed et al., 2015): every row's target blended with
  the prediction, β = 0.95 soft with the gradient through it, β = 0.8 with its one-hot argmax
  (`correction.rows`, `correction.prediction`, `correction.gradient`); soft labels on S_B.
- `proselflc` (Wang et al., CVPR 2021): every row blended with the detached prediction by a
  trust ε = g(t)·l(p) that grows with training time and the prediction's confidence
  (`correction.schedule=proselflc`).
- `selc` (Lu & He, IJCAI 2022): after a warm-up epoch, every row's label becomes a running
  average t ← 0.9·t + 0.1·p of its predictions (`correction.update=running`, α = 0.1,
  `correction.start_epoch=1`; SELC estimates the turning point from training accuracy, we fix it).
- `li-interclass` (Li et al., 2023): the multi-label view, independent sigmoid outputs trained on
  the multi-hot label (eq. 3) with binary cross-entropy and the binary inter-class difference
  loss, no correction.
- `smile-svm`: openSMILE functionals (eGeMAPS and ComParE 2016) and a linear SVM on the clear
  training utterances (`method.smile_svm`), the classic SER baseline.

and the loss settings of Fig. 6 / Table IX, written clear / ambiguous (which terms of eq. 11 each
subset gets: "cor" = the weighted soft cross-entropy of eq. 7, "ic" = the inter-class difference
loss of eqs. 9-10): `cor-cor` (a), `ic-ic` (b), `paper` (c) and `soft-static` (d).
The demo, the notebooks and sweeps all apply presets with `apply_preset`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import Config, apply_overrides
from ..errors import ConfigError

HARD_CROSS_ENTROPY = {"loss.alpha": 0.0, "loss.clear_terms": "cor", "loss.ambiguous_terms": "cor"}


@dataclass(frozen=True)
class Preset:
    name: str  # also the run folder's name
    title: str  # as a figure panel or table row names it
    overrides: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("paper", "(c) paper: cor / cor+ic, correction", {}, "eqs. 6-11"),
    Preset("paper-running", "paper, running correction", {"correction.update": "running"},
           "eqs. 6-11; Algorithm 1's corrected label read as persistent"),
    Preset("soft-static", "(d) soft labels, no correction (α=0)", {"loss.alpha": 0.0}, "eq. 5, eq. 11 with α = 0"),
    Preset("clear-hard", "clear samples, hard labels", {**HARD_CROSS_ENTROPY, "data.train_targets": "clear_only"},
           "consensus labels (eq. 1), common SER practice"),
    Preset("plurality-hard", "all samples, plurality labels", {**HARD_CROSS_ENTROPY, "data.train_targets": "plurality"},
           "argmax of the votes on every sample"),
    Preset("bootstrap-soft", "soft bootstrapping (β=0.95)",
           {**HARD_CROSS_ENTROPY, "loss.alpha": 0.05, "correction.rows": "all", "correction.gradient": True},
           "Reed et al., ICLR 2015 workshop: L = -Σ_k (β t_k + (1-β) q_k) log q_k"),
    Preset("bootstrap-hard", "hard bootstrapping (β=0.8)",
           {**HARD_CROSS_ENTROPY, "loss.alpha": 0.2, "correction.rows": "all", "correction.prediction": "hard"},
           "Reed et al., ICLR 2015 workshop: L = -Σ_k (β t_k + (1-β) z_k) log q_k, z = one-hot argmax q"),
    Preset("proselflc", "ProSelfLC (progressive trust)",
           {**HARD_CROSS_ENTROPY, "correction.rows": "all", "correction.schedule": "proselflc"},
           "Wang et al., CVPR 2021: target (1-ε)·y + ε·p, ε = g(t)·(1 - H(p)/log K)"),
    Preset("selc", "SELC (running ensemble labels)",
           {**HARD_CROSS_ENTROPY, "loss.alpha": 0.1, "correction.rows": "all", "correction.update": "running",
            "correction.start_epoch": 1},
           "Lu & He, IJCAI 2022: t ← m·t + (1-m)·p after the turning point, m = 0.9"),
    Preset("li-interclass", "multi-label, binary inter-class difference",
           {"loss.alpha": 0.0, "loss.clear_terms": "bce,bic", "loss.ambiguous_terms": "bce,bic"},
           "Li et al., 2023: sigmoid outputs, BCE on the multi-hot label (eq. 3) + binary inter-class loss"),
    Preset("smile-svm", "openSMILE functionals + linear SVM",
           {"train.trainer": "smile-svm", "data.train_targets": "clear_only"},
           "Eyben et al. 2016 (eGeMAPS), Schuller et al. 2016 (ComParE); scikit-learn LinearSVC"),
    Preset("ds-soft", "Dawid-Skene posterior, no correction", {"data.train_targets": "dawid-skene", "loss.alpha": 0.0},
           "Dawid & Skene, Appl. Stat. 1979: each annotator's confusion matrix and the class posteriors by EM "
           "(crowd-kit DawidSkene); the posterior as a static soft label"),
    Preset("ds-paper", "Dawid-Skene posterior, corrected (eq. 6)", {"data.train_targets": "dawid-skene"},
           "the Dawid-Skene posterior as y_s, then eqs. 6-11"),
    Preset("mace-soft", "MACE posterior, no correction", {"data.train_targets": "mace", "loss.alpha": 0.0},
           "Hovy et al., NAACL 2013: annotators who sometimes spam (crowd-kit MACE); the posterior as a static soft label"),
    Preset("cor-cor", "(a) cor / cor", {"loss.clear_terms": "cor", "loss.ambiguous_terms": "cor"}, "Fig. 6 (a)"),
    Preset("ic-ic", "(b) ic / ic", {"loss.clear_terms": "ic", "loss.ambiguous_terms": "ic"}, "Fig. 6 (b)"),
)}
METHODS = ("paper", "paper-running", "soft-static", "clear-hard", "plurality-hard", "bootstrap-soft",
           "bootstrap-hard", "proselflc", "selc", "li-interclass", "smile-svm", "ds-soft", "ds-paper", "mace-soft")
# The methods that need annotator-level labels (annotations.csv): a corpus without them is refused.
AGGREGATION_METHODS = ("ds-soft", "ds-paper", "mace-soft")
FIG6_PRESETS = ("cor-cor", "ic-ic", "paper", "soft-static")


def apply_preset(config: Config, name: str) -> Config:
    """A validated copy of `config` with the preset's overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = copy.deepcopy(config)
    apply_overrides(config, PRESETS[name].overrides)
    return config.validate()


def format_presets(names=tuple(PRESETS)) -> str:
    """One line per preset: name, title, reference and overrides (`ser methods`)."""
    lines = []
    for name in names:
        preset = PRESETS[name]
        overrides = ", ".join(f"{k}={v}" for k, v in preset.overrides.items()) or "(the defaults)"
        lines.append(f"{name:15s} {preset.title} — {preset.reference}\n{'':15s} {overrides}")
    return "\n".join(lines)
