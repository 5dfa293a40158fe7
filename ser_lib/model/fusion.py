"""Multi-level fusion of the two branches (eqs. 29-30) and the classifier (eq. 31)."""

from __future__ import annotations

import torch
from torch import nn


class MultiLevelFusion(nn.Module):
    """Multi-level fusion of X_s and F_t (eqs. 29-30).

    F_st = FC3(FC2(FC1([X_s; F_t]))), each FC followed by ReLU       (eq. 29)
    F    = D · softmax(W_s X_s + W_t F_t + F_st)                    (eq. 30)

    The factor D (the fused width) is ours: a D-way softmax has entries near 1/D, which the
    classifier's first layer would see as near-constant inputs and learn from very slowly
    (measured: stage 2 stuck at chance on EmoDB without it). Scaling keeps eq. 30's
    normalised shape with entries of order 1.
    """

    def __init__(self, spatial_dim: int, temporal_dim: int, dims: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        width = spatial_dim + temporal_dim
        for dim in dims:
            layers += [nn.Linear(width, dim), nn.ReLU()]
            width = dim
        self.joint = nn.Sequential(*layers)
        self.spatial_proj = nn.Linear(spatial_dim, width)
        self.temporal_proj = nn.Linear(temporal_dim, width)
        self.output_dim = width

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        joint = self.joint(torch.cat([spatial, temporal.to(spatial.dtype)], dim=-1))
        fused = torch.softmax(self.spatial_proj(spatial) + self.temporal_proj(temporal) + joint, dim=-1)
        return self.output_dim * fused


class Classifier(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear (eq. 31)."""

    def __init__(self, input_dim: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
