"""Padding masks: batches are zero-padded at the end and carry each item's valid length.

Every layer that could spread padding (convolutions, pooling, attention) sees it masked, so
in eval mode a padded item gives the embedding it gets alone (tests/test_model.py).
"""

from __future__ import annotations

import torch


def time_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size] bool, True on the first lengths[b] positions of each row."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def halve_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Valid length after a 2x downsampling with a partial last window: ceil(L / 2)."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


def check_lengths(lengths: torch.Tensor, size: int, name: str, device: torch.device) -> torch.Tensor:
    lengths = torch.as_tensor(lengths, device=device).long()
    if lengths.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor of valid lengths, got shape {tuple(lengths.shape)}")
    if bool((lengths > size).any()) or bool((lengths < 0).any()):
        raise ValueError(f"{name} must lie in [0, {size}] (the padded length), got {lengths.tolist()}")
    return lengths
