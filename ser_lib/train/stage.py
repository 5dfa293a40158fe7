"""One training stage of Algorithm 1, epoch by epoch, with early stopping and resume.

Each step: forward (autocast per `runtime.precision`: bf16, or fp16 on GPUs before Ampere), the
joint loss with real-time correction (eqs. 6-11, `method.losses.JointLoss`), a finite-loss check
naming the batch's utterances, backward, gradient clipping and an Adam step; under fp16 the
backward is loss-scaled and a step whose gradients overflowed is skipped (`optimizer_step`, counted
in the history as skipped_steps). The label store records the ambiguous rows' y_s, y_c and y_g.
Each epoch ends with validation (utterance-level UA, WA breaking ties) and an atomic
checkpoint of everything that determines the rest of the run: model, best model, optimiser,
loss scale, RNG states, label store and early-stopping state. A resumed stage therefore continues
exactly where it stopped; on CPU with a fixed seed it equals an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..config import Config, TrainConfig
from ..data.batching import make_loader
from ..data.samples import Sample
from ..errors import TrainingError
from ..method.label_store import LabelStore
from ..method.losses import JointLoss
from ..runtime import (autocast, grad_scaler, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                       to_device)
from .evaluate import evaluate
from .fold_data import FoldData


@dataclass
class StageProgress:
    """Early-stopping state of a stage; stored in its checkpoint."""

    epoch: int = -1  # last finished epoch
    best_epoch: int = -1
    best_score: tuple[float, float] = (-1.0, -1.0)  # (validation UA, WA)
    bad_epochs: int = 0
    done: bool = False
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    train_samples: int = 0


class StageRunner:
    """Runs one stage epoch by epoch with early stopping, checkpoints and resume."""

    def __init__(self, stage: str, model, fold_data: FoldData, train_samples: list[Sample], config: Config,
                 device: torch.device, checkpoint: Path, max_epochs: int, class_weights: torch.Tensor | None,
                 label_store: LabelStore | None = None, progress: bool = True,
                 on_epoch_end: Callable[[str, int], None] | None = None):
        self.stage, self.model, self.data, self.config = stage, model.to(device), fold_data, config
        self.device, self.checkpoint, self.max_epochs = device, checkpoint, max_epochs
        self.label_store, self.progress, self.on_epoch_end = label_store, progress, on_epoch_end
        self.loss_fn = JointLoss(config.loss, class_weights, config.correction).to(device)
        self.optimizer = make_optimizer(model, config.train)
        self.scaler = grad_scaler(device, config.runtime.precision)
        self.loader = make_loader(train_samples, config.train.batch_size, shuffle=True, seed=config.seed,
                                  bucket_by_length=config.train.bucket_by_length,
                                  num_workers=config.runtime.num_workers)
        self.state = StageProgress()
        self.best_weights = _copy_state(self.model)

    def run(self, resume: bool) -> StageProgress:
        if resume and self.checkpoint.exists():
            self._restore(load_checkpoint(self.checkpoint))
        while not self.state.done:
            epoch = self.state.epoch + 1
            started = time.perf_counter()
            train_loss, skipped = self._train_epoch(epoch)
            validation = evaluate(self.model, self.data.validation, self.config, self.device, self.data.classes)
            self.state.train_seconds += time.perf_counter() - started
            self._end_epoch(epoch, train_loss, skipped, validation)
            if self.on_epoch_end is not None:
                self.on_epoch_end(self.stage, epoch)
        self.model.load_state_dict(self.best_weights)
        return self.state

    def _train_epoch(self, epoch: int) -> tuple[float, int]:
        """The epoch's mean training loss and the number of steps the loss scaler skipped."""
        self.model.train()
        self.loader.set_epoch(epoch)
        self.loss_fn.set_epoch(epoch, self.max_epochs)
        total, count, skipped = 0.0, 0, 0
        bar = tqdm(self.loader, desc=f"{self.stage} epoch {epoch}", leave=False, disable=not self.progress)
        for batch in bar:
            batch = to_device(batch, self.device)
            observed = batch["y_soft"]
            if self.label_store is not None and self.config.correction.update == "running":
                batch = self._with_running_labels(batch, epoch)
            loss, parts = forward_loss(self.model, batch, self.loss_fn, self.device, self.config.runtime.precision)
            # The loss, not its gradients: fp16 gradients that overflow are the scaler's to skip.
            _check_finite(parts["per_sample"], batch, self.stage, epoch)
            skipped += not optimizer_step(loss, self.model, self.optimizer, self.config.train.grad_clip, self.scaler)
            tracked = self._tracked_rows(batch)
            if self.label_store is not None and bool(tracked.any()):
                self.label_store.record(epoch, batch["sample_ids"], observed.cpu(), parts["corrected"].cpu(),
                                        parts["probs"].cpu(), mask=tracked)
            total += loss.item() * len(batch["sample_ids"])
            count += len(batch["sample_ids"])
            bar.set_postfix(loss=f"{total / count:.4f}")
        self.state.train_samples += count
        return total / count, skipped

    def _tracked_rows(self, batch: dict) -> torch.Tensor:
        """The rows the label store follows: the ambiguous ones, or every row when a running
        correction corrects every row (SELC)."""
        ambiguous = batch["ambiguous"].cpu()
        if self.config.correction.update == "running" and self.config.correction.rows == "all":
            return torch.ones_like(ambiguous)
        return ambiguous

    def _with_running_labels(self, batch: dict, epoch: int) -> dict:
        """The batch with each tracked row's y_s replaced by its running corrected label."""
        tracked = self._tracked_rows(batch)
        if not bool(tracked.any()):
            return batch
        ids = [i for i, a in zip(batch["sample_ids"], tracked.tolist()) if a]
        y_soft = batch["y_soft"].clone()
        running = torch.from_numpy(self.label_store.running(ids, epoch)).to(y_soft)
        y_soft[tracked.to(y_soft.device)] = running
        return {**batch, "y_soft": y_soft}

    def _end_epoch(self, epoch: int, train_loss: float, skipped: int, validation: dict) -> None:
        state = self.state
        state.epoch = epoch
        score = (validation["ua"], validation["wa"])
        improved = score > tuple(state.best_score)
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            self.best_weights = _copy_state(self.model)
        else:
            state.bad_epochs += 1
        row = {"stage": self.stage, "epoch": epoch, "train_loss": train_loss,
               "val_wa": validation["wa"], "val_ua": validation["ua"]}
        if self.scaler.is_enabled():  # fp16 only, so fp32 and bf16 records keep their keys
            row["skipped_steps"] = skipped
        state.history.append(row)
        state.done = state.bad_epochs >= self.config.train.patience or epoch + 1 >= self.max_epochs
        if self.progress:
            mark = "*" if improved else " "
            skips = f"  {skipped} fp16 steps skipped" if skipped else ""
            tqdm.write(f"{self.stage} epoch {epoch:3d}{mark} loss {train_loss:.4f}  "
                       f"val WA {validation['wa']:5.1f}  UA {validation['ua']:5.1f}{skips}")
        save_checkpoint(self.checkpoint, self._snapshot())

    def _snapshot(self) -> dict:
        state = dataclasses.asdict(self.state)
        state["best_score"] = list(state["best_score"])
        snapshot = {
            "stage": self.stage, "progress": state,
            "model": self.model.state_dict(), "best_model": self.best_weights,
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_state(),
        }
        if self.label_store is not None:
            snapshot["label_store"] = self.label_store.state_dict()
        return snapshot

    def _restore(self, snapshot: dict) -> None:
        if snapshot["stage"] != self.stage:
            raise TrainingError(f"checkpoint {self.checkpoint} is for {snapshot['stage']}, not {self.stage}")
        self.model.load_state_dict(snapshot["model"])
        self.best_weights = snapshot["best_model"]
        self.optimizer.load_state_dict(snapshot["optimizer"])
        # Empty from a disabled scaler and absent from checkpoints older than loss scaling: both
        # leave the fresh scaler (and an fp32 or bf16 resume ignores a saved fp16 scale).
        if snapshot.get("scaler"):
            self.scaler.load_state_dict(snapshot["scaler"])
        progress = dict(snapshot["progress"])
        progress["best_score"] = tuple(progress["best_score"])
        self.state = StageProgress(**progress)
        if self.label_store is not None and "label_store" in snapshot:
            self.label_store.load_state_dict(snapshot["label_store"], source=str(self.checkpoint))
        set_rng_state(snapshot["rng"])


def make_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """Adam with the learning rate, weight decay and ε (`train.adam_eps`) of Table I."""
    return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay, eps=train.adam_eps)


def forward_loss(model: torch.nn.Module, batch: dict, loss_fn: JointLoss, device: torch.device,
                 precision: str = "auto") -> tuple[torch.Tensor, dict]:
    """The joint loss of a batch already on `device` (eqs. 6-11), the forward under autocast."""
    with autocast(device, precision):
        logits = model(batch)["logits"]
    return loss_fn(logits.float(), batch["y_soft"], batch["ambiguous"])


_NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)  # passes everything through


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   grad_clip: float, scaler: torch.amp.GradScaler | None = None) -> bool:
    """Backward, gradient-norm clipping (0 = off) and one optimiser step; False when skipped.

    With an enabled `scaler` (fp16, `runtime.grad_scaler`) the backward runs on the scaled loss,
    and a step whose gradients overflowed to inf or NaN is skipped while the scale backs off. A
    disabled scaler (or None) is the plain backward and step.
    """
    scaler = _NO_SCALING if scaler is None else scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scale = scaler.get_scale()  # always 1.0 when disabled
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() >= scale  # the scale backs off exactly when the step was skipped


def _copy_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_finite(per_sample: torch.Tensor, batch: dict, stage: str, epoch: int) -> None:
    bad = ~torch.isfinite(per_sample.detach())
    if bool(bad.any()):
        ids = [batch["utt_ids"][i] for i in torch.nonzero(bad).flatten().tolist()]
        raise TrainingError(f"{stage} epoch {epoch}: non-finite loss for utterance(s) {ids}; "
                            f"lower train.lr or check these files")
