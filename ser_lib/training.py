"""Two-stage training with real-time soft-label correction (Algorithm 1, Table I).

Stage 1 fine-tunes the temporal branch with a classification head on the clear samples
(S_A) → M1p. Stage 2 joins M1p's temporal branch with a freshly initialised spatial branch,
fusion and classifier → Mp, and trains it on S_A ∪ S_B, shuffled: in every step the ambiguous
targets are corrected from the current predictions (eq. 6, inside `losses.joint_loss`) and
the label store records them per epoch. Both stages stop early on the validation UA.

Every epoch ends with an atomic checkpoint (model, optimiser, RNG states, label store,
history, early-stopping state), so `resume=True` continues an interrupted fold; on CPU with
a fixed seed the result equals that of an uninterrupted run (tests/test_training.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .atomic import atomic_write, atomic_write_text
from .cache import FeatureCache
from .config import Config
from .data import (Sample, aggregate_by_utterance, build_samples, clear_class_counts, fbank_statistics,
                   make_loader)
from .divergence import js_divergence
from .errors import ConfigError, TrainingError
from .folds import Fold, split_frame
from .label_store import LabelStore
from .labels import AMBIGUOUS, CLEAR
from .losses import JointLoss, inverse_frequency_weights
from .metrics import classification_metrics, js_to_soft
from .model import SERModel, TemporalClassifier
from .results import predictions_frame

STAGE1, STAGE2 = "stage1", "stage2"
CHECKPOINT_VERSION = 1


# ----------------------------------------------------------------------------- devices


def select_device(name: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU for "auto"; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available here; use auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={name!r} but MPS is not available here; use auto or cpu")
    return device


def autocast(device: torch.device):
    """bf16 autocast on CUDA (no loss scaling needed); full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict, device: torch.device) -> dict:
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


def stage_seed(seed: int, fold: str, stage: str) -> int:
    """A seed per (run seed, fold, stage), so a stage's init does not depend on what ran before."""
    return int.from_bytes(f"{seed}|{fold}|{stage}".encode(), "little") % (2**31 - 1)


# ----------------------------------------------------------------------------- fold data


@dataclass
class FoldData:
    """The segments of one LOSO fold (see `folds.split_frame`)."""

    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    test_ambiguous: list[Sample]
    classes: tuple[str, ...]

    @property
    def train_clear(self) -> list[Sample]:
        return [s for s in self.train if s.subset == CLEAR]


def prepare_fold(parted: pd.DataFrame, fold: Fold, config: Config, cache: FeatureCache | None,
                 progress: bool = True) -> FoldData:
    splits = split_frame(parted, fold)

    def samples(name: str, subsets) -> list[Sample]:
        frame = splits[name]
        if len(frame) == 0:
            return []
        return build_samples(frame, config.data, config.features, cache, subsets=subsets, progress=progress)

    return FoldData(
        train=samples("train", (CLEAR, AMBIGUOUS)),
        validation=samples("validation", (CLEAR,)),
        test=samples("test", (CLEAR,)),
        test_ambiguous=samples("test_ambiguous", (AMBIGUOUS,)),
        classes=tuple(parted.attrs["classes"]),
    )


# ----------------------------------------------------------------------------- prediction


@dataclass
class Predictions:
    """Per-utterance outputs: segment probabilities averaged per utterance."""

    utt_ids: list[str]
    probs: np.ndarray  # [N, K]
    embeddings: np.ndarray  # [N, D], averaged like the probabilities
    y_soft: np.ndarray  # [N, K] the utterances' labels (one-hot for clear)
    true: np.ndarray | None  # [N, K] known true distributions (synthetic corpora)


@torch.no_grad()
def predict(model: torch.nn.Module, samples: list[Sample], config: Config, device: torch.device) -> Predictions:
    model.eval()
    loader = make_loader(samples, config.train.batch_size, shuffle=False, seed=0,
                         bucket_by_length=config.train.bucket_by_length, num_workers=0)
    sample_ids, probs, embeddings = [], [], []
    for batch in loader:
        with autocast(device):
            out = model(to_device(batch, device))
        probs.append(torch.softmax(out["logits"].float(), dim=-1).cpu())
        embeddings.append(out["embedding"].float().cpu())
        sample_ids += batch["utt_ids"]
    by_segment = {s.utt_id: s for s in samples}
    utt_ids, mean_probs = aggregate_by_utterance(sample_ids, torch.cat(probs))
    _, mean_embeddings = aggregate_by_utterance(sample_ids, torch.cat(embeddings))
    truths = [by_segment[u].true for u in utt_ids]
    return Predictions(
        utt_ids=list(utt_ids),
        probs=mean_probs.numpy(),
        embeddings=mean_embeddings.numpy(),
        y_soft=torch.stack([by_segment[u].y_soft for u in utt_ids]).numpy(),
        true=None if any(t is None for t in truths) else torch.stack(truths).numpy(),
    )


def evaluate(model, samples: list[Sample], config: Config, device, classes) -> dict:
    """WA/UA and friends on clear samples, utterance level."""
    result = predict(model, samples, config, device)
    return classification_metrics(result.y_soft.argmax(axis=1), result.probs.argmax(axis=1), classes)


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic torch.save: an interrupted write leaves the previous checkpoint intact."""
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why
        raise TrainingError(f"checkpoint {path} cannot be loaded: {exc}") from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(f"checkpoint {path} has version {state.get('version')}, expected {CHECKPOINT_VERSION}")
    return state


def seed_all(seed: int) -> None:
    """torch for init and dropout; numpy because transformers draws its time masks from it."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def rng_state() -> dict:
    """torch, CUDA and numpy generator states, as tensors and numbers (weights_only-safe)."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- one stage


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
        self.loss_fn = JointLoss(config.loss, class_weights).to(device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
        self.loader = make_loader(train_samples, config.train.batch_size, shuffle=True, seed=config.seed,
                                  bucket_by_length=config.train.bucket_by_length,
                                  num_workers=config.train.num_workers)
        self.state = StageProgress()
        self.best_weights = _copy_state(self.model)

    def run(self, resume: bool) -> StageProgress:
        if resume and self.checkpoint.exists():
            self._restore(load_checkpoint(self.checkpoint))
        while not self.state.done:
            epoch = self.state.epoch + 1
            started = time.perf_counter()
            train_loss = self._train_epoch(epoch)
            validation = evaluate(self.model, self.data.validation, self.config, self.device, self.data.classes)
            self.state.train_seconds += time.perf_counter() - started
            self._end_epoch(epoch, train_loss, validation)
            if self.on_epoch_end is not None:
                self.on_epoch_end(self.stage, epoch)
        self.model.load_state_dict(self.best_weights)
        return self.state

    def _train_epoch(self, epoch: int) -> float:
        self.model.train()
        self.loader.set_epoch(epoch)
        total, count = 0.0, 0
        bar = tqdm(self.loader, desc=f"{self.stage} epoch {epoch}", leave=False, disable=not self.progress)
        for batch in bar:
            batch = to_device(batch, self.device)
            with autocast(self.device):
                logits = self.model(batch)["logits"]
            loss, parts = self.loss_fn(logits.float(), batch["y_soft"], batch["ambiguous"])
            _check_finite(parts["per_sample"], batch, self.stage, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
            self.optimizer.step()
            if self.label_store is not None and bool(batch["ambiguous"].any()):
                self.label_store.record(epoch, batch["sample_ids"], batch["y_soft"].cpu(), parts["corrected"].cpu(),
                                        parts["probs"].cpu(), mask=batch["ambiguous"].cpu())
            total += loss.item() * len(batch["sample_ids"])
            count += len(batch["sample_ids"])
            bar.set_postfix(loss=f"{total / count:.4f}")
        self.state.train_samples += count
        return total / count

    def _end_epoch(self, epoch: int, train_loss: float, validation: dict) -> None:
        state = self.state
        state.epoch = epoch
        score = (validation["ua"], validation["wa"])
        improved = score > tuple(state.best_score)
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            self.best_weights = _copy_state(self.model)
        else:
            state.bad_epochs += 1
        state.history.append({"stage": self.stage, "epoch": epoch, "train_loss": train_loss,
                              "val_wa": validation["wa"], "val_ua": validation["ua"]})
        state.done = state.bad_epochs >= self.config.train.patience or epoch + 1 >= self.max_epochs
        if self.progress:
            mark = "*" if improved else " "
            tqdm.write(f"{self.stage} epoch {epoch:3d}{mark} loss {train_loss:.4f}  "
                       f"val WA {validation['wa']:5.1f}  UA {validation['ua']:5.1f}")
        save_checkpoint(self.checkpoint, self._snapshot())

    def _snapshot(self) -> dict:
        state = dataclasses.asdict(self.state)
        state["best_score"] = list(state["best_score"])
        snapshot = {
            "version": CHECKPOINT_VERSION, "stage": self.stage, "progress": state,
            "model": self.model.state_dict(), "best_model": self.best_weights,
            "optimizer": self.optimizer.state_dict(), "rng": rng_state(),
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
        progress = dict(snapshot["progress"])
        progress["best_score"] = tuple(progress["best_score"])
        self.state = StageProgress(**progress)
        if self.label_store is not None and "label_store" in snapshot:
            self.label_store.load_state_dict(snapshot["label_store"], source=str(self.checkpoint))
        set_rng_state(snapshot["rng"])


def _copy_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_finite(per_sample: torch.Tensor, batch: dict, stage: str, epoch: int) -> None:
    bad = ~torch.isfinite(per_sample.detach())
    if bool(bad.any()):
        ids = [batch["utt_ids"][i] for i in torch.nonzero(bad).flatten().tolist()]
        raise TrainingError(f"{stage} epoch {epoch}: non-finite loss for utterance(s) {ids}; "
                            f"lower train.lr or check these files")


# ----------------------------------------------------------------------------- a fold


def class_weights_for(samples: list[Sample], config: Config, num_classes: int) -> torch.Tensor | None:
    """Inverse-frequency weights from the clear training segments (eq. 7)."""
    if not config.loss.class_weights:
        return None
    return inverse_frequency_weights(clear_class_counts(samples, num_classes), num_classes, counts=True)


def train_fold(config: Config, parted: pd.DataFrame, fold: Fold, fold_dir: str | Path,
               cache: FeatureCache | None = None, resume: bool = False, progress: bool = True,
               on_epoch_end: Callable[[str, int], None] | None = None) -> dict:
    """Train and evaluate one LOSO fold; writes checkpoints, the model and `fold_result.json`.

    Returns the fold record: test metrics, divergences, timings and the learning history.
    """
    fold_dir = Path(fold_dir)
    device = select_device(config.train.device)
    data = prepare_fold(parted, fold, config, cache, progress)
    classes, num_classes = data.classes, len(data.classes)
    weights = class_weights_for(data.train, config, num_classes)

    # Stage 1: the temporal branch on clear samples (M1p). The spatial-only variant has none.
    stage1 = None
    if config.model.variant == "spatial":
        seed_all(stage_seed(config.seed, fold.test_speaker, STAGE2))
        model = SERModel(config.model, num_classes)
    else:
        seed_all(stage_seed(config.seed, fold.test_speaker, STAGE1))
        stage1_model = TemporalClassifier(config.model, num_classes)
        if config.train.stage1_max_epochs > 0:
            stage1 = StageRunner(STAGE1, stage1_model, data, data.train_clear, config, device,
                                 fold_dir / "stage1.pt", config.train.stage1_max_epochs, weights,
                                 progress=progress, on_epoch_end=on_epoch_end).run(resume)
        # Stage 2: M1p's temporal branch + fresh spatial branch, fusion and classifier (Mp).
        seed_all(stage_seed(config.seed, fold.test_speaker, STAGE2))
        model = SERModel.from_stage1(stage1_model.cpu(), config.model, num_classes)

    if model.spatial is not None:
        model.spatial.set_input_statistics(*fbank_statistics(data.train))

    # Stage 2 trains on clear ∪ ambiguous with real-time correction.
    store = LabelStore(classes)
    ambiguous_train = [s for s in data.train if s.subset == AMBIGUOUS]
    if ambiguous_train:
        store.register([s.sample_id for s in ambiguous_train], torch.stack([s.y_soft for s in ambiguous_train]),
                       subset=AMBIGUOUS, true=_stack_true(ambiguous_train))
    runner = StageRunner(STAGE2, model, data, data.train, config, device, fold_dir / "stage2.pt",
                         config.train.max_epochs, weights, label_store=store, progress=progress,
                         on_epoch_end=on_epoch_end)
    stage2 = runner.run(resume)

    save_model(fold_dir / "model.pt", runner.model, config, classes)
    store.save(fold_dir / "label_history.npz")
    test = predict(runner.model, data.test, config, device)
    record = _fold_record(fold, config, data, test, runner, store, stage1, stage2)
    _write_fold_outputs(fold_dir, record, test, fold, classes)
    return record


def _stack_true(samples: list[Sample]) -> torch.Tensor | None:
    if any(s.true is None for s in samples):
        return None
    return torch.stack([s.true for s in samples])


def _fold_record(fold, config, data: FoldData, test: Predictions, runner: StageRunner, store: LabelStore,
                 stage1: StageProgress | None, stage2: StageProgress) -> dict:
    classes = data.classes
    metrics = classification_metrics(test.y_soft.argmax(axis=1), test.probs.argmax(axis=1), classes)
    record = {
        "speaker": fold.test_speaker,
        "validation_speakers": list(fold.validation_speakers),
        "train_speakers": list(fold.train_speakers),
        "optimistic": fold.optimistic,
        **metrics,
        "history": (stage1.history if stage1 else []) + stage2.history,
        "best_epoch": {"stage1": stage1.best_epoch if stage1 else None, "stage2": stage2.best_epoch},
        "train_seconds": (stage1.train_seconds if stage1 else 0.0) + stage2.train_seconds,
        "train_samples_seen": (stage1.train_samples if stage1 else 0) + stage2.train_samples,
        "num_train": {"clear": len(data.train_clear), "ambiguous": len(data.train) - len(data.train_clear)},
    }
    record["train_samples_per_second"] = record["train_samples_seen"] / max(record["train_seconds"], 1e-9)
    if data.test_ambiguous:
        ambiguous = predict(runner.model, data.test_ambiguous, config, runner.device)
        record["js_ambiguous_test"] = js_to_soft(ambiguous.probs, ambiguous.y_soft)
    record.update(_divergences_to_truth(store, runner, data, config))
    return record


def _divergences_to_truth(store: LabelStore, runner: StageRunner, data: FoldData, config: Config) -> dict:
    """On synthetic corpora: how far the observed, the finally corrected and the predicted labels
    of the ambiguous training samples are from the true distributions (the paper's claim)."""
    ambiguous = [s for s in data.train if s.subset == AMBIGUOUS]
    if not ambiguous or any(s.true is None for s in ambiguous) or not store.epochs:
        return {}
    ids = [s.sample_id for s in ambiguous]
    true = torch.stack([s.true for s in ambiguous]).numpy()
    observed = torch.stack([s.y_soft for s in ambiguous]).numpy()
    final = store.final("corrected").loc[ids].to_numpy()
    predicted = predict(runner.model, ambiguous, config, runner.device)
    by_utt = {u: p for u, p in zip(predicted.utt_ids, predicted.probs)}
    predicted_rows = np.stack([by_utt[s.utt_id] for s in ambiguous])
    return {
        "js_observed_to_true": float(js_divergence(observed, true).mean()),
        "js_corrected_to_true": float(js_divergence(final, true).mean()),
        "js_pred_to_true": float(js_divergence(predicted_rows, true).mean()),
    }


def _write_fold_outputs(fold_dir: Path, record: dict, test: Predictions, fold: Fold, classes) -> None:
    """Test predictions, embeddings (for t-SNE, Fig. 6) and the fold record, written last: its
    presence marks a finished fold."""
    labels = [classes[k] for k in test.y_soft.argmax(axis=1)]
    frame = predictions_frame(test.utt_ids, [fold.test_speaker] * len(labels), fold.test_speaker, labels,
                              test.probs, classes)
    atomic_write_text(fold_dir / "predictions.csv", frame.to_csv(index=False, lineterminator="\n", float_format="%.6f"))
    with atomic_write(fold_dir / "embeddings.npz", "wb") as handle:
        np.savez(handle, utt_ids=np.array(test.utt_ids), embeddings=test.embeddings,
                 labels=test.y_soft.argmax(axis=1), probs=test.probs)
    atomic_write_text(fold_dir / "fold_result.json", json.dumps(record, indent=2, default=_json_default))


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# ----------------------------------------------------------------------------- saved models


def save_model(path: Path, model: SERModel, config: Config, classes) -> None:
    """Weights plus what rebuilds the model offline: the config, the classes and the encoder's
    architecture (so a model fine-tuned from a Hub encoder loads without the Hub)."""
    encoder = model.temporal.encoder.config.to_dict() if model.temporal is not None else None
    save_checkpoint(path, {"version": CHECKPOINT_VERSION, "config": config.to_dict(), "classes": list(classes),
                           "encoder_config": json.dumps(encoder), "model": model.state_dict()})
