"""Named experiment settings: one spelling each, as overrides of the typed config.

A preset is what a paper's table row or figure panel changes against the method: the
no-correction baseline (α = 0, eq. 6 leaves y_s unchanged) and the loss settings of Fig. 6 /
Table IX, written clear / ambiguous (which terms of eq. 11 each subset gets: "cor" = the
weighted soft cross-entropy of eq. 7, "ic" = the inter-class difference loss of eqs. 9-10).
The demo, the notebooks and sweeps all apply presets with `apply_preset`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import Config, apply_overrides
from ..errors import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str  # also the run folder's name
    title: str  # as a figure panel or table row names it
    overrides: Mapping[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # Fig. 6 (a)-(d); (c) is the method itself, with the profile's α and β.
    Preset("cor_cor", "(a) cor / cor", {"loss.clear_terms": "cor", "loss.ambiguous_terms": "cor"}),
    Preset("ic_ic", "(b) ic / ic", {"loss.clear_terms": "ic", "loss.ambiguous_terms": "ic"}),
    Preset("correction", "(c) cor / cor+ic"),
    Preset("no_correction", "(d) no correction (α=0)", {"loss.alpha": 0.0}),
)}
FIG6_PRESETS = ("cor_cor", "ic_ic", "correction", "no_correction")


def apply_preset(config: Config, name: str) -> Config:
    """A validated copy of `config` with the preset's overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = copy.deepcopy(config)
    apply_overrides(config, PRESETS[name].overrides)
    return config.validate()
