"""Algorithm 1: two-stage training with real-time soft-label correction, for one LOSO fold.

Stage 1 fine-tunes the temporal branch with a classification head on the clear samples
(S_A) → M1p. Stage 2 joins M1p's temporal branch with a freshly initialised spatial branch,
fusion and classifier → Mp, and trains it on S_A ∪ S_B, shuffled: in every step the ambiguous
targets are corrected from the current predictions (eq. 6, inside `method.losses.joint_loss`)
and the label store records them per epoch. Both stages stop early on the validation UA
(`stage.StageRunner`, which also makes them resumable). Runs whose stage 1 would be identical
share one (`runtime.share_stage1`, `stage1_store`). With a frozen encoder
(`model.encoder_mode=frozen`) both stages read its cached hidden states (`frozen`) and train
the layer weights, pooling and what follows. `model.encoder=DIR/{fold}` gives each fold its own
encoder (`task_adaptive`), and the record says what audio the fold's encoder was pretrained on.

`train_fold` then evaluates Mp on the test speaker and writes the fold's folder
(`analysis.runs`); its record holds the test metrics, divergences to the truth (synthetic
corpora), timings and the learning history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..analysis import runs
from ..analysis.divergence import js_divergence
from ..analysis.metrics import classification_metrics, js_to_soft
from ..analysis.results import fold_record, predictions_frame
from ..config import Config
from ..data.cache import FeatureCache
from ..data.folds import Fold
from ..data.labels import Partition
from ..data.samples import Sample, clear_class_counts, fbank_statistics
from ..method.label_store import LabelStore
from ..method.losses import inverse_frequency_weights
from ..model import SERModel, TemporalClassifier, save_model
from ..model.encoder import encoder_audio
from ..runtime import seed_all, select_device
from .evaluate import Predictions, predict
from .fold_data import FoldData, prepare_fold
from .frozen import attach_hidden_states
from .stage import StageProgress, StageRunner
from .stage1_store import Stage1Store, stage1_identity
from .task_adaptive import encoder_for_fold

STAGE1, STAGE2 = "stage1", "stage2"


def stage_seed(seed: int, fold: str, stage: str) -> int:
    """A seed per (run seed, fold, stage), so a stage's init does not depend on what ran before."""
    return int.from_bytes(f"{seed}|{fold}|{stage}".encode(), "little") % (2**31 - 1)


def class_weights_for(samples: list[Sample], config: Config, num_classes: int) -> torch.Tensor | None:
    """Inverse-frequency weights from the clear training segments (eq. 7)."""
    if not config.loss.class_weights:
        return None
    return inverse_frequency_weights(clear_class_counts(samples, num_classes), num_classes, counts=True)


def freeze_front_end(temporal, samples: list[Sample], device) -> None:
    """Fix wav2vec2's convolutional front end (model.freeze_feature_encoder) and compute its
    output for every sample once (`Sample.front_end`; training passes every segment of the
    fold): it cannot change, so no epoch recomputes it. Stage 2 inherits the frozen front end
    with the rest of the temporal branch."""
    temporal.encoder.freeze_feature_encoder()
    temporal.to(device)
    for sample, features in zip(samples, temporal.front_end([s.waveform for s in samples])):
        sample.front_end = features


def train_fold(config: Config, parted: Partition, fold: Fold, fold_dir: str | Path,
               cache: FeatureCache | None = None, resume: bool = False, progress: bool = True,
               on_epoch_end: Callable[[str, int], None] | None = None) -> dict:
    """Train and evaluate one LOSO fold; writes checkpoints, the model and `fold_result.json`.

    Returns the fold record: test metrics, divergences, timings and the learning history.
    """
    fold_dir = Path(fold_dir)
    config = encoder_for_fold(config, fold)
    device = select_device(config.runtime.device)
    data = prepare_fold(parted, fold, config, cache, progress)
    classes, num_classes = data.classes, len(data.classes)
    weights = class_weights_for(data.train, config, num_classes)

    # Stage 1: the temporal branch on clear samples (M1p). The spatial-only variant has none.
    stage1, stage1_reused = None, False
    if config.model.variant == "spatial":
        seed_all(stage_seed(config.seed, fold.name, STAGE2))
        model = SERModel(config.model, num_classes)
    else:
        seed_all(stage_seed(config.seed, fold.name, STAGE1))
        stage1_model = TemporalClassifier(config.model, num_classes)
        if config.model.encoder_mode == "frozen":
            attach_hidden_states(stage1_model.temporal, data, cache, device, progress)
        elif config.model.freeze_feature_encoder:
            freeze_front_end(stage1_model.temporal, data.every_sample, device)
        if config.train.stage1_max_epochs > 0:
            stage1, stage1_reused = _stage1(config, fold, data, stage1_model, weights, device, fold_dir, resume,
                                            progress, on_epoch_end)
        # Stage 2: M1p's temporal branch + fresh spatial branch, fusion and classifier (Mp).
        seed_all(stage_seed(config.seed, fold.name, STAGE2))
        model = SERModel.from_stage1(stage1_model.cpu(), config.model, num_classes)

    if model.spatial is not None:
        model.spatial.set_input_statistics(*fbank_statistics(data.train))

    # Stage 2 trains on clear ∪ ambiguous with real-time correction.
    store = _label_store(classes, data, config)
    runner = StageRunner(STAGE2, model, data, data.train, config, device, runs.stage_checkpoint(fold_dir, STAGE2),
                         config.train.max_epochs, weights, label_store=store, progress=progress,
                         on_epoch_end=on_epoch_end)
    stage2 = runner.run(resume)

    save_model(fold_dir / runs.MODEL, runner.model, config, classes)
    store.save(fold_dir / runs.LABEL_HISTORY)
    test = predict(runner.model, data.test, config, device)
    record = _fold_record(fold, config, data, test, runner, store, stage1, stage2, stage1_reused)
    labels = [classes[k] for k in test.labels]
    speaker_of = {s.utt_id: s.speaker for s in data.test}
    predictions = predictions_frame(test.utt_ids, [speaker_of[u] for u in test.utt_ids], fold.name, labels,
                                    test.probs, classes)
    runs.write_fold_outputs(fold_dir, record, predictions, test.utt_ids, test.embeddings, test.labels, test.probs)
    return record


def _stage1(config: Config, fold: Fold, data: FoldData, model: TemporalClassifier, weights, device,
            fold_dir: Path, resume: bool, progress: bool, on_epoch_end) -> tuple[StageProgress, bool]:
    """Stage 1 into `model`: trained here (resuming from the fold's checkpoint), or, with
    `runtime.share_stage1`, loaded from the shared store when an identical one was trained before.
    Returns its progress and whether it was reused."""
    def train() -> StageProgress:
        checkpoint = runs.stage_checkpoint(fold_dir, STAGE1)
        return StageRunner(STAGE1, model, data, data.train_clear, config, device, checkpoint,
                           config.train.stage1_max_epochs, weights, progress=progress,
                           on_epoch_end=on_epoch_end).run(resume)

    if not config.runtime.share_stage1:
        return train(), False
    identity = stage1_identity(config, fold, data, weights, model, device)
    state, reused = Stage1Store(config.cache_dir).get_or_train(identity, model, train)
    if reused and progress:
        tqdm.write(f"stage1: reused (best epoch {state.best_epoch}, trained in {state.train_seconds:.0f} s)")
    return state, reused


def _label_store(classes, data: FoldData, config: Config) -> LabelStore:
    """The ambiguous training samples, whose labels are corrected; every training sample when a
    running correction corrects every row (SELC), each with its subset."""
    tracked = data.train_ambiguous
    if config.correction.update == "running" and config.correction.rows == "all":
        tracked = data.train
    store = LabelStore(classes)
    if tracked:
        store.register([s.sample_id for s in tracked], torch.stack([s.y_soft for s in tracked]),
                       subset=[s.subset for s in tracked], true=_stack_true(tracked))
    return store


def _stack_true(samples: list[Sample]) -> torch.Tensor | None:
    if any(s.true is None for s in samples):
        return None
    return torch.stack([s.true for s in samples])


def _fold_record(fold, config, data: FoldData, test: Predictions, runner: StageRunner, store: LabelStore,
                 stage1: StageProgress | None, stage2: StageProgress, stage1_reused: bool) -> dict:
    """The fold's record. A reused stage 1 keeps its history and best epoch; its seconds are
    `stage1_train_seconds`, not part of `train_seconds`, which counts what this run trained."""
    classes = data.classes
    metrics = classification_metrics(test.labels, test.probs.argmax(axis=1), classes)
    trained_here = ([stage1] if stage1 and not stage1_reused else []) + [stage2]
    record = fold_record(
        fold, metrics,
        history=(stage1.history if stage1 else []) + stage2.history,
        best_epoch={"stage1": stage1.best_epoch if stage1 else None, "stage2": stage2.best_epoch},
        train_seconds=sum(s.train_seconds for s in trained_here),
        train_samples_seen=sum(s.train_samples for s in trained_here),
        stage1_reused=stage1_reused,
        stage1_train_seconds=stage1.train_seconds if stage1 else None,
        num_train={"clear": len(data.train_clear), "ambiguous": len(data.train_ambiguous)},
    )
    record["train_samples_per_second"] = record["train_samples_seen"] / max(record["train_seconds"], 1e-9)
    if config.model.variant != "spatial":
        record["encoder_audio"] = encoder_audio(config.model.encoder, fold.test_speakers)
    if data.test_ambiguous:
        ambiguous = predict(runner.model, data.test_ambiguous, config, runner.device)
        record["js_ambiguous_test"] = js_to_soft(ambiguous.probs, ambiguous.y_soft)
    record.update(_divergences_to_truth(store, runner, data, config))
    return record


def _divergences_to_truth(store: LabelStore, runner: StageRunner, data: FoldData, config: Config) -> dict:
    """On synthetic corpora: how far the observed, the finally corrected and the predicted labels
    of the ambiguous training samples are from the true distributions (the paper's claim)."""
    ambiguous = data.train_ambiguous
    if not ambiguous or any(s.true is None for s in ambiguous) or not store.epochs:
        return {}
    divergences = store.divergences().loc[[s.sample_id for s in ambiguous]]
    true = torch.stack([s.true for s in ambiguous]).numpy()
    predicted = predict(runner.model, ambiguous, config, runner.device)
    by_utt = {u: p for u, p in zip(predicted.utt_ids, predicted.probs)}
    predicted_rows = np.stack([by_utt[s.utt_id] for s in ambiguous])
    return {
        "js_observed_to_true": float(divergences["js_observed_to_true"].to_numpy().mean()),
        "js_corrected_to_true": float(divergences["js_corrected_to_true"].to_numpy().mean()),
        "js_pred_to_true": float(js_divergence(predicted_rows, true).mean()),
    }
