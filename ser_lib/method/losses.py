"""Losses: weighted soft cross-entropy (eq. 7), enhanced inter-class difference loss
(eqs. 9-10), their joint use on clear and ambiguous samples (eq. 11), the binary
inter-class difference loss of the multi-label baseline (Li et al., 2023), and the identity that
shows what correction does to eq. 7's gradient (`reweighting_identity`, for notebook 06).

Every loss function returns one value per sample, shape [B]; only `joint_loss` reduces,
as the mean over the batch of each sample's summed terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import CorrectionConfig, LossConfig, check_beta, check_ic_form
from ..errors import ConfigError
from .correction import check_label_batch, correct_labels, correction_alpha


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """Half-precision (autocast) logits are upcast so the log-softmax and exp stay accurate."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-weighted soft-target cross-entropy per sample [B] (eq. 7).

    L_i = -Σ_k w_k · y_ik · log softmax(logits_i)_k

    The weight multiplies each class' term inside the sum (as in torch's `cross_entropy`
    with probability targets and `weight=`); it is not renormalised per sample, so a
    sample of a rare class simply counts w_k times. With w = 1 this is plain soft CE.
    """
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must both be [B, K]")
    log_probs = F.log_softmax(_full_precision(logits), dim=-1)
    terms = targets.to(log_probs.dtype) * log_probs
    if class_weights is not None:
        if class_weights.shape != logits.shape[1:]:
            raise ValueError(f"class_weights must have shape [{logits.shape[1]}], got {tuple(class_weights.shape)}")
        terms = terms * class_weights.to(log_probs)
    return -terms.sum(-1)


def inverse_frequency_weights(labels_or_counts, num_classes: int, *, counts: bool = False) -> torch.Tensor:
    """Inverse-frequency class weights [K] for eq. 7, normalised to average 1.

    By default the input holds labels: a 1-D tensor of class indices, or a 2-D [N, K]
    tensor of label rows (one-hot or soft; the class count is the column sum). With
    `counts=True` it is the length-K vector of per-class counts itself.

    w_k = (1 / n_k) / mean_j(1 / n_j), so a balanced set gets all ones. A class with no
    samples has no defined weight: that raises ConfigError (use loss.class_weights=false,
    or add samples of that class) rather than silently weighting it 0 or infinity.
    """
    values = torch.as_tensor(labels_or_counts)
    if counts:
        if values.shape != (num_classes,):
            raise ValueError(f"counts must have shape [{num_classes}], got {tuple(values.shape)}")
        class_counts = values.double()
    elif values.ndim == 1:
        if values.is_floating_point() or values.dtype == torch.bool:
            raise ValueError(f"1-D labels must be integer class indices, got dtype {values.dtype}")
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.numel():
            raise ValueError(f"class indices must be in [0, {num_classes}), got {bad[:5].tolist()}")
        class_counts = torch.bincount(values.long(), minlength=num_classes).double()
    elif values.ndim == 2 and values.shape[1] == num_classes:
        class_counts = values.double().sum(0)
    else:
        raise ValueError(f"labels must be [N] indices or [N, {num_classes}] rows, got shape {tuple(values.shape)}")
    if not torch.isfinite(class_counts).all() or (class_counts < 0).any():
        raise ValueError(f"class counts must be finite and non-negative, got {class_counts.tolist()}")
    empty = (class_counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ConfigError(
            f"loss.class_weights: class index(es) {empty} have no training samples "
            f"(counts {class_counts.tolist()}); inverse-frequency weights are undefined"
        )
    inverse = 1.0 / class_counts
    return (inverse / inverse.mean()).float()


def inter_class_margins(probs: torch.Tensor, targets: torch.Tensor, beta: float, form: str = "eq10") -> torch.Tensor:
    """The margins u_ijk of eq. 10, shape [B, K (j), K (k)].

    form "eq10" (as printed):  u_ijk = max(0, (1 - y_ij)(p_ij + β) - y_ij · p_ik)
    form "eq16" (the margin eq. 16 differentiates):  u_ijk = max(0, (1 - y_ij)(p_ij + β) - y_ik · p_ik)

    As printed, a class j with y_j = 0 is pushed down by p_j + β whatever p_k is; eq. 16 asks
    instead that each non-target probability p_j stay β below y_k·p_k for the classes k the label
    holds, a margin between p_j and p_k.
    """
    if probs.shape != targets.shape or probs.ndim != 2:
        raise ValueError(f"probs {tuple(probs.shape)} and targets {tuple(targets.shape)} must both be [B, K]")
    check_beta(beta)
    check_ic_form(form)
    y = targets.to(probs.dtype)
    negative_margin = ((1.0 - y) * (probs + beta)).unsqueeze(2)  # [B, j, 1]
    if form == "eq10":
        positive_mass = y.unsqueeze(2) * probs.unsqueeze(1)  # [B, j, k]: y_ij · p_ik
    else:  # "eq16"
        positive_mass = (y * probs).unsqueeze(1)  # [B, 1, k]: y_ik · p_ik
    return torch.clamp(negative_margin - positive_mass, min=0.0)


def inter_class_difference(probs: torch.Tensor, targets: torch.Tensor, beta: float,
                           form: str = "eq10") -> torch.Tensor:
    """Enhanced inter-class difference loss per sample [B] (eqs. 9-10).

    L_i = Σ_j Σ_k (exp(u_ijk) - 1),  u_ijk = max(0, (1 - y_ij)(p_ij + β) - y_ij · p_ik)

    summed over all classes j and k, p = class probabilities, y = target distribution.
    For targets and probabilities in [0, 1], every u_ijk lies in [0, 1 + β] and hence
    0 <= L_i <= K² (e^(1+β) - 1).

    Note: on a one-hot target with class c, every j != c gives u = p_j + β > 0, so the
    loss is not zero even for a perfect prediction; it acts as a push of non-target
    probability towards zero. `joint_loss` therefore applies it, by default, only to
    ambiguous samples (LossConfig.ambiguous_terms), not to clear ones.
    """
    return torch.expm1(inter_class_margins(probs, targets, beta, form)).sum(dim=(1, 2))


def binary_inter_class_difference(logits: torch.Tensor, multi_hot: torch.Tensor, beta: float) -> torch.Tensor:
    """Binary inter-class difference loss per sample [B] (Li et al., 2023), multi-label baseline.

    Our reading: with independent sigmoid outputs p = σ(logits) and a multi-hot label set Y,
    every pair of a non-label class j ∉ Y and a label class k ∈ Y should keep p_k at least
    β above p_j. A violated pair costs exp(u) - 1 with u = max(0, p_j + β - p_k), the shape
    of eqs. 9-10:

        L_i = Σ_{j ∉ Y_i} Σ_{k ∈ Y_i} (exp(max(0, p_ij + β - p_ik)) - 1)

    The pairs are summed, not averaged. A sample whose label set is empty or contains
    every class has no pairs and costs 0. Entries of `multi_hot` above 0.5 count as labels.
    """
    if logits.shape != multi_hot.shape or logits.ndim != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(multi_hot.shape)} must both be [B, K]")
    check_beta(beta)
    probs = torch.sigmoid(_full_precision(logits))
    is_label = (multi_hot > 0.5).to(probs.dtype)
    pair_mask = (1.0 - is_label).unsqueeze(2) * is_label.unsqueeze(1)  # [B, j non-label, k label]
    u = torch.clamp(probs.unsqueeze(2) + beta - probs.unsqueeze(1), min=0.0)
    return (torch.expm1(u) * pair_mask).sum(dim=(1, 2))


def binary_cross_entropy(logits: torch.Tensor, multi_hot: torch.Tensor,
                         class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy per sample [B] on independent sigmoid outputs and a multi-hot label
    (the multi-label baseline, Li et al., 2023), summed over classes; each class' term is
    weighted by w_k like eq. 7 so that the baseline sees the same class balance as the method."""
    terms = F.binary_cross_entropy_with_logits(_full_precision(logits), multi_hot.to(torch.float32), reduction="none")
    if class_weights is not None:
        terms = terms * class_weights.to(terms)
    return terms.sum(-1)


def joint_loss(
    logits: torch.Tensor,
    y_soft: torch.Tensor,
    ambiguous: torch.Tensor,
    config: LossConfig,
    class_weights: torch.Tensor | None = None,
    correction: CorrectionConfig | None = None,
    epoch: int | None = None,
    max_epochs: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Joint loss over clear and ambiguous samples with real-time label correction (eq. 11).

    probs = softmax(logits); y_c = correct_labels(y_soft, probs, α, ambiguous) (eq. 6), or the
    bootstrapping variants `correction` (`config.CorrectionConfig`) selects.
    Each sample sums the terms of its subset: `config.clear_terms` for clear rows,
    `config.ambiguous_terms` for ambiguous rows, where
      "cor" = soft_cross_entropy(logits, y_c, class_weights)            (eq. 7)
      "ic"  = inter_class_difference(probs, y_c or y_s, β, config.ic_form)  (eqs. 9-10)
      "bce", "bic" = the multi-label baseline's terms on the multi-hot label y_s > 0 (eq. 3)
    and `config.ic_target` picks y_c ("corrected") or y_s ("observed") for "ic".
    α is `correction_alpha`'s: loss.alpha, or ProSelfLC's per-row trust at `epoch` of
    `max_epochs`, and 0 before `correction.start_epoch`.
    With `config.ic_norm` "batch" the loss is the mean over the batch of these per-sample
    sums: divided by B, not by the summed class weights as torch's hard-label
    `cross_entropy(weight=...)` does. With "ambiguous" (eq. 9) the ic term is divided by the
    number N_2 of rows it applies to instead.
    α = 0 gives the "no correction" baseline; the term choices cover Table IX.

    class_weights [K] must be given exactly when `config.class_weights` is true. `config` is
    validated once, by `load_config`; here only α and β are checked, by the functions using them.

    Returns (loss, parts). parts holds per-sample tensors [B]: "per_sample" (the summed
    terms; check `torch.isfinite(parts["per_sample"])` to name the rows that went
    non-finite), "cor" and "ic" (0 where a term is not applied), and, detached, for the
    label store: "corrected" [B, K] (y_c) and "probs" [B, K] (y_g).
    """
    check_label_batch(y_soft, ambiguous)
    if logits.shape != y_soft.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and soft labels {tuple(y_soft.shape)} differ in shape")
    if config.class_weights and class_weights is None:
        raise ConfigError("loss.class_weights is true but no class weights were given (see inverse_frequency_weights)")
    if not config.class_weights and class_weights is not None:
        raise ConfigError("class weights were given but loss.class_weights is false; pass None or enable it")

    probs = torch.softmax(_full_precision(logits), dim=-1)
    correction = correction or CorrectionConfig()
    corrected_rows = ambiguous if correction.rows == "ambiguous" else torch.ones_like(ambiguous)
    alpha = correction_alpha(config.alpha, correction, probs, epoch, max_epochs)
    corrected = correct_labels(y_soft.to(probs.dtype), probs, alpha, corrected_rows,
                               hard=correction.prediction == "hard", keep_gradient=correction.gradient)
    ic_target = corrected if config.ic_target == "corrected" else y_soft.to(probs.dtype)
    used = set(config.clear_terms) | set(config.ambiguous_terms)
    multi_hot = (y_soft > 0).to(probs.dtype)
    term_functions = {
        "cor": lambda: soft_cross_entropy(logits, corrected, class_weights),
        "ic": lambda: inter_class_difference(probs, ic_target, config.beta, config.ic_form),
        "bce": lambda: binary_cross_entropy(logits, multi_hot, class_weights),
        "bic": lambda: binary_inter_class_difference(logits, multi_hot, config.beta),
    }
    # "cor" and "ic" are always computed (the label store and the parts expect them).
    terms = {name: fn() for name, fn in term_functions.items() if name in used or name in ("cor", "ic")}
    parts: dict[str, torch.Tensor] = {}
    per_sample = torch.zeros_like(terms["cor"])
    rows = {}  # which rows each term applies to
    for name, values in terms.items():
        applies = rows[name] = torch.where(ambiguous, name in config.ambiguous_terms, name in config.clear_terms)
        # where, not a 0/1 product: a non-finite term on a row that does not use it stays out.
        parts[name] = torch.where(applies, values, torch.zeros_like(values))
        per_sample = per_sample + parts[name]
    parts["per_sample"] = per_sample
    parts["corrected"] = corrected.detach()
    parts["probs"] = probs.detach()
    return _reduce(parts, list(terms), rows["ic"], config.ic_norm), parts


def _reduce(parts: dict[str, torch.Tensor], term_names: list[str], ic_rows: torch.Tensor, ic_norm: str) -> torch.Tensor:
    """The batch loss: the mean of the per-sample sums ("batch"), or, for eq. 9's 1/N_2
    ("ambiguous"), the cross-entropy's mean over the batch plus the ic term's mean over the
    N_2 rows it applies to (0 when the batch has none)."""
    if ic_norm == "batch":
        return parts["per_sample"].mean()
    batch_mean = sum(parts[name].mean() for name in term_names if name != "ic")
    return batch_mean + parts["ic"].sum() / ic_rows.sum().clamp_min(1)


class JointLoss(nn.Module):
    """`joint_loss` as a module: holds the config and the class weights as a buffer,
    so `.to(device)` moves the weights with the model."""

    def __init__(self, config: LossConfig, class_weights: torch.Tensor | None = None,
                 correction: CorrectionConfig | None = None):
        super().__init__()
        self.config = config
        self.correction = correction
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)
        self.epoch: int | None = None
        self.max_epochs: int | None = None

    def set_epoch(self, epoch: int, max_epochs: int) -> None:
        """Training time, for the correction's warm-up and ProSelfLC's global trust."""
        self.epoch, self.max_epochs = epoch, max_epochs

    def forward(
        self, logits: torch.Tensor, y_soft: torch.Tensor, ambiguous: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return joint_loss(logits, y_soft, ambiguous, self.config, self.class_weights, self.correction,
                          self.epoch, self.max_epochs)


def reweighting_identity(logits: torch.Tensor, y_soft: torch.Tensor, alpha: float,
                         class_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The book's "Which y_s eq. 6 corrects" (book/method/choices.md), numerically: with y_g the
    step's own detached prediction, the gradient of eq. 7 with the corrected target (eq. 6) on logit m is

        (1 - α) · g_0 + α · p_m · (Σ_k w_k p_k - w_m),

    g_0 the gradient with the uncorrected target: correction only rescales an ambiguous row's
    cross-entropy gradient, plus a pull towards the low-weight classes when class weights are
    used. Returns both sides, computed independently (autograd vs the formula), per row.
    """
    rows = torch.ones(len(y_soft), dtype=torch.bool)
    weights = torch.ones(y_soft.shape[1], dtype=logits.dtype) if class_weights is None else class_weights

    def gradient(target_alpha: float) -> torch.Tensor:
        z = logits.detach().clone().requires_grad_(True)
        target = correct_labels(y_soft, torch.softmax(z, -1), target_alpha, rows)
        soft_cross_entropy(z, target, weights).sum().backward()
        return z.grad

    probs = torch.softmax(logits.detach(), -1)
    extra = probs * ((weights * probs).sum(-1, keepdim=True) - weights)
    return {"autograd": gradient(alpha), "formula": (1 - alpha) * gradient(0.0) + alpha * extra}
