"""Model-independent real-time label correction (eq. 6).

An ambiguous sample's observed soft label y_s (vote proportions, eq. 5) is blended with
the model's current prediction y_g at every training step:

    y_c = (1 - α) · y_s + α · y_g                                          (eq. 6)

Clear samples keep their one-hot consensus label. y_g is detached: the corrected label
is a *target*, so no gradient may flow into the model through it (otherwise the model
could lower the loss by moving the target towards itself). The same blend with other choices
gives Reed et al.'s bootstrapping (2015): every row corrected, β = 1 - α, the soft variant
keeping the gradient through y_g, the hard one blending with the one-hot argmax of y_g
(`correction.rows`, `correction.prediction`, `correction.gradient`). ProSelfLC (Wang et al.,
CVPR 2021) makes α per row and epoch (`correction_alpha`), and SELC (Lu & He, IJCAI 2022) is the
blend on every row with a running label after a warm-up (`correction.update=running`,
`correction.start_epoch`).
"""

from __future__ import annotations

import torch

from ..config import CorrectionConfig, check_alpha


def check_label_batch(y_soft: torch.Tensor, ambiguous: torch.Tensor) -> None:
    """Shapes shared by the correction and the joint loss: y_soft [B, K], ambiguous bool [B]."""
    if y_soft.ndim != 2 or y_soft.shape[1] < 2:
        raise ValueError(f"soft labels must have shape [batch, classes>=2], got {tuple(y_soft.shape)}")
    if ambiguous.dtype != torch.bool or ambiguous.shape != y_soft.shape[:1]:
        raise ValueError(
            f"ambiguous must be a bool tensor of shape [{y_soft.shape[0]}], "
            f"got {ambiguous.dtype} of shape {tuple(ambiguous.shape)}"
        )


def proselflc_trust(probs: torch.Tensor, epoch: int, max_epochs: int, base: float, transit: float) -> torch.Tensor:
    """ProSelfLC's ε per row [B] (Wang et al., CVPR 2021, eqs. 5-6 there): the global trust in
    the model grows with training time, g = 1 / (1 + exp(-base·(epoch/max_epochs - transit))),
    and each row's local trust is the prediction's confidence, l = 1 - H(p) / log K."""
    probs = probs.detach()
    time = torch.tensor(epoch / max(max_epochs, 1) - transit, dtype=probs.dtype)
    global_trust = torch.sigmoid(base * time)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
    local_trust = 1.0 - entropy / torch.log(torch.tensor(float(probs.shape[-1]), dtype=probs.dtype))
    return (global_trust * local_trust).clamp(0.0, 1.0)


def correction_alpha(alpha: float, correction: CorrectionConfig, probs: torch.Tensor, epoch: int | None,
                     max_epochs: int | None) -> float | torch.Tensor:
    """The α of eq. 6 at this step: loss.alpha ("constant"), ProSelfLC's ε per row
    ("proselflc"), and 0 before `correction.start_epoch`. Without an epoch (a loss called
    outside training) the warm-up does not apply and ProSelfLC's time is the end of training."""
    if epoch is not None and epoch < correction.start_epoch:
        return 0.0
    if correction.schedule == "proselflc":
        max_epochs = max_epochs or 1
        return proselflc_trust(probs, max_epochs if epoch is None else epoch, max_epochs,
                               correction.proselflc_base, correction.proselflc_transit)
    return alpha


def correct_labels(
    y_soft: torch.Tensor, y_pred: torch.Tensor, alpha: float | torch.Tensor, rows: torch.Tensor, *,
    hard: bool = False, keep_gradient: bool = False,
) -> torch.Tensor:
    """Corrected labels y_c [B, K] (eq. 6) on the selected rows; the other rows keep y_soft.

    y_soft: observed labels [B, K] (one-hot on clear rows, vote proportions on ambiguous ones).
    y_pred: the model's current class probabilities y_g [B, K]; detached unless `keep_gradient`.
    alpha: a number in [0, 1], or one per row [B] (ProSelfLC).
    rows: bool [B], True for the rows to correct (the paper: the ambiguous subset S_B).
    hard: blend with the one-hot of y_pred's argmax instead (Reed et al.'s hard bootstrapping).
    keep_gradient: let the gradient flow through y_pred (Reed et al.'s soft bootstrapping, which
    thereby adds (1-β)·entropy minimisation); the paper's target is a constant.
    Rows sum to 1 whenever both inputs' rows do (a convex combination).
    """
    if isinstance(alpha, torch.Tensor):
        if alpha.shape != rows.shape or bool(((alpha < 0) | (alpha > 1)).any()):
            raise ValueError(f"per-row alpha must have shape {tuple(rows.shape)} and lie in [0, 1]")
        alpha = alpha.to(y_soft.dtype).unsqueeze(1)
    else:
        alpha = check_alpha(alpha)
    check_label_batch(y_soft, rows)
    if y_pred.shape != y_soft.shape:
        raise ValueError(f"predictions {tuple(y_pred.shape)} and soft labels {tuple(y_soft.shape)} differ in shape")
    if hard:
        y_pred = torch.nn.functional.one_hot(y_pred.argmax(-1), y_pred.shape[-1])
    y_pred = (y_pred if keep_gradient else y_pred.detach()).to(y_soft.dtype)
    blended = (1.0 - alpha) * y_soft + alpha * y_pred
    return torch.where(rows.unsqueeze(1), blended, y_soft)

