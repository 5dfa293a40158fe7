"""Stage 1 of Algorithm 1, trained once and shared by every run that would train it identically.

Stage 1 trains the temporal branch on the clear samples S_A only, so most of what tells the runs
of a sweep apart (the method, α, β, the ambiguous rows' loss terms, the spatial branch) cannot
change it. `stage1_identity` collects what can: the config fields listed in `STAGE1_FIELDS` (and
`CLEAR_TERM_FIELDS` / `CORRECTION_FIELDS` where they reach clear rows), the fold, digests of the
training and validation clear samples as fed, a digest of the initial weights (the encoder's
checkpoint included), the resolved device type and autocast dtype, and library versions. Its
sha256 with `STAGE1_FORMAT_VERSION`, as in the feature cache (`data.cache`), names the entry
`<cache_dir>/stage1/<key[:2]>/<key>.pt`: the best weights and the stage's `StageProgress`
(history, best epoch, seconds, samples). Any change misses by construction; nothing is
invalidated by hand. Every config field is classified in this module, and a test fails when a
new one is not, so that no field is left out of the key by oversight.

Two trials wanting one entry at once (processes, or machines sharing the filesystem) take a
`filelock.FileLock` beside it: the first trains and publishes, the second waits and then loads.
An entry holds its own key and a digest of its weights; an unreadable or altered entry is
reported with a warning naming the file and trained again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import transformers
from filelock import FileLock, Timeout

from ..config import Config, flatten
from ..data.cache import canonical_json, state_digest, update_digest
from ..data.samples import Sample
from ..errors import TrainingError
from ..files import project_path
from ..runtime import autocast_dtype, load_checkpoint, save_checkpoint
from ..data.folds import Fold
from .fold_data import FoldData
from .stage import StageProgress

# Bump when what an entry holds, or how stage 1 trains, changes: old entries then miss.
STAGE1_FORMAT_VERSION = 1
KIND = "stage1"

# Config fields that always enter the key. The data section also changes the samples, which
# are hashed as fed; it is listed whole anyway, as is eval.validation (which speakers validate).
STAGE1_FIELDS = (
    "seed",  # stage_seed(seed, fold, stage1): init, dropout, SpecAugment masks; the batch order
    "data.classes", "data.clear_threshold", "data.sample_rate", "data.max_segment_s", "data.min_segment_s",
    "data.segmentation", "data.mixdown", "data.resample",
    "model.encoder", "model.encoder_mode", "model.frozen_layer_norm", "model.mask_time_prob",
    "model.freeze_feature_encoder",  # all TemporalClassifier reads
    "train.lr", "train.weight_decay", "train.adam_eps", "train.batch_size", "train.patience",
    "train.stage1_max_epochs", "train.bucket_by_length", "train.grad_clip",
    "loss.clear_terms", "loss.class_weights",
    "eval.validation",
)
# Stage 1's batches hold clear rows only. These loss fields act on clear rows when a clear term
# other than "cor" is used (β, the ic variant; with several terms the normalisation's rounding).
CLEAR_TERM_FIELDS = ("loss.beta", "loss.ic_target", "loss.ic_norm", "loss.ic_form")
# Eq. 6 corrects the ambiguous rows only (correction.rows=ambiguous): clear rows keep y_s exactly,
# so α and the correction settings cannot reach stage 1 unless every row is corrected.
CORRECTION_FIELDS = ("loss.alpha", "correction.update", "correction.rows", "correction.prediction",
                     "correction.gradient", "correction.schedule", "correction.proselflc_base",
                     "correction.proselflc_transit", "correction.start_epoch")
# Resolved, not as written: "auto" means different things on different machines.
RESOLVED_FIELDS = ("runtime.device", "runtime.precision")
# Fields (or whole sections) that cannot change stage 1, and why.
NOT_STAGE1 = {
    "loss.ambiguous_terms": "stage 1 has no ambiguous rows",
    "data.train_targets": "changes the ambiguous samples only; the clear ones are hashed",
    "features": "filterbanks feed the spatial branch; stage 1 reads the waveform",
    "synth": "a synthetic corpus enters through its samples",
    "model.variant": "every variant with a temporal branch starts from the same stage 1",
    "model.spatial_norm": "spatial branch", "model.parallel_channels": "spatial branch",
    "model.conv_channels": "spatial branch", "model.fusion_dims": "fusion", "model.classifier_hidden": "stage 2's head",
    "model.dropout": "stage 2's classifier",
    "train.max_epochs": "stage 2's", "train.trainer": "only algorithm1 has a stage 1",
    "train.smile_sets": "smile-svm", "train.svm_c": "smile-svm",
    "eval.folds": "which folds run; the fold itself is in the key",
    "eval.kfold": "which speakers a fold holds: its samples are hashed, its name is in the key",
    "eval.fold_seed": "which speakers a fold holds: its samples are hashed",
    "runtime.num_workers": "same batches",
    "runtime.threads": "not a run's identity (CPU float reductions may round differently)",
    "runtime.share_stage1": "this switch",
    "pretrain": "makes an encoder, whose weights are in the key",
    "cache_dir": "where entries live",
}


def stage1_fields(config: Config) -> tuple[str, ...]:
    """The config fields that can change `config`'s stage 1 (see the lists above)."""
    fields = STAGE1_FIELDS
    if set(config.loss.clear_terms) != {"cor"}:
        fields += CLEAR_TERM_FIELDS
    if config.correction.rows != "ambiguous":
        fields += CORRECTION_FIELDS
    return fields


def stage1_identity(config: Config, fold: Fold, data: FoldData, class_weights: torch.Tensor | None,
                    model: torch.nn.Module, device: torch.device) -> dict:
    """Everything that determines the stage-1 result of `config` on `fold`; `model` is the
    freshly initialised `TemporalClassifier`, before any training."""
    flat = flatten(config.to_dict())
    return {
        "config": {name: flat[name] for name in stage1_fields(config)},
        "fold": fold.name,  # part of stage_seed
        "class_weights": None if class_weights is None else class_weights.tolist(),
        "train": samples_digest(data.train_clear),
        "validation": samples_digest(data.validation),
        "init": state_digest(model.state_dict()),  # catches a Hub revision or a rebuilt tiny-pretrained
        "device": device.type,
        "autocast": str(autocast_dtype(device, config.runtime.precision)),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__},
    }


def stage1_key(identity: dict) -> str:
    payload = canonical_json({"version": STAGE1_FORMAT_VERSION, "kind": KIND, "identity": identity})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def samples_digest(samples: Sequence[Sample]) -> str:
    """sha256 of the samples as stage 1 gets them, in order: ids, subset, label, waveform."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(canonical_json({"id": s.sample_id, "utt": s.utt_id, "speaker": s.speaker, "subset": s.subset,
                                      "valid": s.num_valid_samples}).encode())
        update_digest(digest, s.y_soft)
        update_digest(digest, s.waveform)
    return digest.hexdigest()


def _layout(state: dict[str, torch.Tensor]) -> dict:
    return {name: (tuple(tensor.shape), tensor.dtype) for name, tensor in state.items()}


class Stage1Store:
    """Finished stage-1 models by key; `hits`, `misses` and `corrupt` count what happened."""

    def __init__(self, cache_dir: str | Path):
        self.root = project_path(cache_dir) / KIND  # beside the feature cache
        self.hits = self.misses = self.corrupt = 0

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.pt"

    def get_or_train(self, identity: dict, model: torch.nn.Module,
                     train: Callable[[], StageProgress]) -> tuple[StageProgress, bool]:
        """Stage 1 of `identity`: loaded into `model` from the store, or trained by `train()`
        (which leaves the best weights in `model`) and published. Returns its progress and
        whether it was reused."""
        key = stage1_key(identity)
        path = self.entry_path(key)
        with self._locked(path):  # one trains, the others wait here and then load
            if path.exists():
                progress = self._load(path, key, model)
                if progress is not None:
                    self.hits += 1
                    return progress, True
            self.misses += 1
            progress = train()
            self._save(path, key, identity, model, progress)
            return progress, False

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path.with_suffix(".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self._waiting(path)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _waiting(self, path: Path) -> None:
        """Say why a run stands still: another one trains this stage 1 (a sweep's log shows it)."""
        print(f"stage 1 {path.stem[:12]} is being trained by another run; waiting to load it from {path}",
              file=sys.stderr, flush=True)

    def _save(self, path: Path, key: str, identity: dict, model: torch.nn.Module, progress: StageProgress) -> None:
        weights = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        state = dataclasses.asdict(progress)
        state["best_score"] = list(state["best_score"])
        save_checkpoint(path, {"key": key, "identity": canonical_json(identity),
                               "weights_digest": state_digest(weights), "model": weights, "progress": state})

    def _load(self, path: Path, key: str, model: torch.nn.Module) -> StageProgress | None:
        """The entry's progress, its weights loaded into `model`; None (and a warning) when it is
        unusable. Everything is checked before `model` is touched."""
        try:
            entry = load_checkpoint(path)
            if entry.get("key") != key:
                raise ValueError("it does not hold the key it is filed under")
            weights = entry["model"]
            if state_digest(weights) != entry["weights_digest"]:
                raise ValueError("its weights do not match their digest")
            if _layout(weights) != _layout(model.state_dict()):
                raise ValueError("its weights do not fit the model")
            progress = dict(entry["progress"])
            progress["best_score"] = tuple(progress["best_score"])
            progress = StageProgress(**progress)
        except (TrainingError, ValueError, KeyError, TypeError) as exc:
            self.corrupt += 1
            warnings.warn(f"shared stage-1 entry {path} is unusable ({exc}); training stage 1 again", stacklevel=3)
            return None
        model.load_state_dict(weights)
        return progress
