"""Stage 1 trained once and shared by runs that would train it identically
(`runtime.share_stage1`, `ser_lib/train/stage1_store.py`): equal results, misses, concurrency, corruption."""

import dataclasses
import multiprocessing
import re
import warnings

import pytest
import torch

from ser_lib.analysis import runs
from ser_lib.config import Config, flatten, load_config
from ser_lib.data.labels import load_partition
from ser_lib.method.losses import JointLoss
from ser_lib.method.presets import FIG6_PRESETS, METHODS, apply_preset
from ser_lib.model import TemporalClassifier
from ser_lib.runtime import seed_all
from ser_lib.train import stage1_store
from ser_lib.train.algorithm import STAGE1, class_weights_for, stage_seed, train_fold
from ser_lib.data.folds import loso_folds
from ser_lib.train.fold_data import prepare_fold
from ser_lib.train.stage import StageProgress
from ser_lib.train.stage1_store import Stage1Store, stage1_fields, stage1_identity, stage1_key

# Short stages: two epochs of stage 1 and two of stage 2 on the tiny corpus take a few seconds.
SHORT = {"train.stage1_max_epochs": 2, "train.max_epochs": 2}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def short_config(quick, preset=None, **overrides):
    config = load_config("demo", overrides={**quick, **SHORT, **overrides})
    return apply_preset(config, preset) if preset else config


def fold_of(config, manifest, speaker="S1F"):
    parted = load_partition(manifest, config.data)
    config.eval.folds = (speaker,)
    return parted, loso_folds(parted, config.eval)[0]


def unshared(config):
    config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, share_stage1=False))
    return config.validate()


def entries(config):
    return sorted(Stage1Store(config.cache_dir).root.rglob("*.pt"))


def same_weights(a, b):
    a, b = (torch.load(path / runs.MODEL, weights_only=True)["model"] for path in (a, b))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("preset, change", [(None, {"loss.alpha": 0.0}), ("clear-hard", {}),
                                            (None, {"model.variant": "integrated", "loss.beta": 0.3})])
def test_a_reused_stage1_gives_the_predictions_of_a_retrained_one(tiny_corpus, tmp_path, quick, preset, change):
    first = short_config(quick)
    parted, fold = fold_of(first, tiny_corpus)
    published = train_fold(first, parted, fold, tmp_path / "first", progress=False)
    assert not published["stage1_reused"] and len(entries(first)) == 1

    second = short_config(quick, preset, **change)  # another stage 2, the same stage 1
    shared = train_fold(second, parted, fold, tmp_path / "shared", progress=False)
    alone = train_fold(unshared(second), parted, fold, tmp_path / "alone", progress=False)

    assert shared["stage1_reused"] and not alone["stage1_reused"]
    assert not runs.stage_checkpoint(tmp_path / "shared", STAGE1).exists()  # it never trained stage 1
    assert runs.stage_checkpoint(tmp_path / "alone", STAGE1).exists()
    assert len(entries(first)) == 1
    for name in (runs.PREDICTIONS_CSV, runs.EMBEDDINGS, runs.LABEL_HISTORY):
        assert (tmp_path / "shared" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name
    assert same_weights(tmp_path / "shared", tmp_path / "alone")
    assert shared["history"] == alone["history"] and shared["best_epoch"] == alone["best_epoch"]
    assert (shared["wa"], shared["ua"]) == (alone["wa"], alone["ua"])
    # Honest time: the reused stage's seconds are reported apart, not as trained by this run.
    assert shared["stage1_train_seconds"] == published["stage1_train_seconds"]
    assert shared["train_samples_seen"] < alone["train_samples_seen"]


def test_other_stage1_settings_train_their_own(tiny_corpus, tmp_path, quick):
    first = short_config(quick)
    parted, fold = fold_of(first, tiny_corpus)
    train_fold(first, parted, fold, tmp_path / "first", progress=False)
    other = short_config(quick, **{"train.lr": 2e-3})
    record = train_fold(other, parted, fold, tmp_path / "other", progress=False)
    assert not record["stage1_reused"] and len(entries(first)) == 2


class Interrupt(Exception):
    pass


def test_an_interrupted_stage1_resumes_from_its_fold_and_is_published_when_done(tiny_corpus, tmp_path, quick):
    config = short_config(quick)
    parted, fold = fold_of(config, tiny_corpus)
    straight = train_fold(unshared(config), parted, fold, tmp_path / "straight", progress=False)

    def stop_in_stage1(stage, epoch):
        if (stage, epoch) == (STAGE1, 0):
            raise Interrupt

    with pytest.raises(Interrupt):
        train_fold(config, parted, fold, tmp_path / "resumed", progress=False, on_epoch_end=stop_in_stage1)
    assert runs.stage_checkpoint(tmp_path / "resumed", STAGE1).exists() and not entries(config)
    seen = []
    resumed = train_fold(config, parted, fold, tmp_path / "resumed", resume=True, progress=False,
                         on_epoch_end=lambda stage, epoch: seen.append((stage, epoch)))
    assert seen[0] == (STAGE1, 1)  # continued after the checkpointed epoch 0
    assert not resumed["stage1_reused"] and len(entries(config)) == 1
    assert resumed["history"] == straight["history"]
    assert same_weights(tmp_path / "resumed", tmp_path / "straight")


# Loss and correction settings that stage 1's clear rows never see.
LOSS_CHANGES = [{"loss.alpha": 0.7}, {"loss.beta": 0.3}, {"loss.ambiguous_terms": "cor"}, {"loss.ic_norm": "ambiguous"},
                {"loss.ic_form": "eq16"}, {"loss.ic_target": "observed"}, {"correction.update": "running"},
                {"correction.schedule": "proselflc"}, {"correction.prediction": "hard"},
                {"correction.gradient": True}, {"correction.start_epoch": 3}]
# Changes that alter stage 1 (each must miss) and changes that cannot (each must hit).
STAGE1_CHANGES = [{"seed": 1}, {"train.lr": 2e-3}, {"train.batch_size": 2}, {"train.stage1_max_epochs": 3},
                  {"train.patience": 1}, {"train.grad_clip": 1.0}, {"train.bucket_by_length": False},
                  {"train.weight_decay": 0.0}, {"train.adam_eps": 1e-5}, {"model.mask_time_prob": 0.0},
                  {"model.freeze_feature_encoder": False}, {"loss.class_weights": False},
                  {"loss.clear_terms": "cor,ic"}, {"correction.rows": "all"}, {"data.clear_threshold": 0.4},
                  {"eval.validation": "paper"}]
STAGE2_CHANGES = LOSS_CHANGES + [
    {"train.max_epochs": 5}, {"model.variant": "integrated"}, {"model.dropout": 0.5}, {"model.fusion_dims": "8,8,8"},
    {"data.train_targets": "plurality"}, {"features.num_mel_bins": 20}, {"runtime.threads": 2},
    {"runtime.num_workers": 1}, {"runtime.share_stage1": False}]


def test_the_key_changes_exactly_with_stage1(tiny_corpus, quick):
    base = short_config(quick, **{"runtime.precision": "fp32"})
    parted, fold = fold_of(base, tiny_corpus)
    data = prepare_fold(parted, fold, base, None, progress=False)
    seed_all(stage_seed(base.seed, fold.test_speaker, STAGE1))
    model = TemporalClassifier(base.model, len(data.classes))

    def key(config, fold=fold, data=data, model=model, device=torch.device("cpu")):
        weights = class_weights_for(data.train, config, len(data.classes))
        return stage1_key(stage1_identity(config, fold, data, weights, model, device))

    def changed(overrides):
        return short_config(quick, **{"runtime.precision": "fp32", **overrides})

    reference = key(base)
    for overrides in STAGE1_CHANGES:
        assert key(changed(overrides)) != reference, overrides
    for overrides in STAGE2_CHANGES:
        assert key(changed(overrides)) == reference, overrides
    assert key(changed({"runtime.precision": "bf16"})) != reference
    other_model = TemporalClassifier(base.model, len(data.classes))  # another init (the RNG moved on)
    assert key(base, model=other_model) != reference
    other_fold = fold_of(base, tiny_corpus, "S2F")[1]
    assert key(base, fold=other_fold, data=prepare_fold(parted, other_fold, base, None, progress=False)) != reference
    louder = dataclasses.replace(data, train=list(data.train))
    clear = louder.train.index(data.train_clear[0])
    louder.train[clear] = dataclasses.replace(data.train_clear[0], waveform=data.train_clear[0].waveform * 1.001)
    assert key(base, data=louder) != reference


def test_every_config_field_is_classified():
    listed = set(stage1_store.STAGE1_FIELDS + stage1_store.CLEAR_TERM_FIELDS + stage1_store.CORRECTION_FIELDS
                 + stage1_store.RESOLVED_FIELDS)
    excluded = set(stage1_store.NOT_STAGE1)
    fields = set(flatten(Config().to_dict()))
    sections = {name.split(".")[0] for name in fields}
    assert not listed & excluded and listed <= fields and excluded <= fields | sections
    for name in fields:
        assert name in listed or name in excluded or name.split(".")[0] in excluded, (
            f"{name}: decide whether it can change stage 1 (ser_lib/train/stage1_store.py)")


def clear_rows_loss(config):
    """The stage-1 loss and its gradient on a batch of clear rows, as StageRunner computes it."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=generator).requires_grad_(True)
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 1, 2]), 4).float()
    weights = torch.tensor([0.5, 1.0, 1.5, 1.0]) if config.loss.class_weights else None
    loss_fn = JointLoss(config.loss, weights, config.correction)
    loss_fn.set_epoch(2, 4)
    loss, _ = loss_fn(logits, y, torch.zeros(6, dtype=torch.bool))
    loss.backward()
    return loss.detach(), logits.grad


def test_loss_settings_outside_the_key_do_not_change_the_stage1_loss():
    """The reasoning behind `stage1_fields`, checked bit for bit: configs whose stage-1 fields
    agree give the same loss and gradient on clear rows."""
    configs = [apply_preset(load_config("demo"), name) for name in METHODS + FIG6_PRESETS if name != "smile-svm"]
    for overrides in LOSS_CHANGES:
        configs.append(load_config("demo", overrides=overrides))
    groups = {}
    for config in configs:
        fields = {name: flatten(config.to_dict())[name] for name in stage1_fields(config)}
        groups.setdefault(repr(sorted(fields.items())), []).append(clear_rows_loss(config))
    assert max(len(group) for group in groups.values()) >= 8  # most methods share stage 1
    for results in groups.values():
        loss, grad = results[0]
        assert all(torch.equal(loss, other) and torch.equal(grad, other_grad) for other, other_grad in results)
    # ... while the fields in the key do change it (so the check above can fail).
    paper = clear_rows_loss(load_config("demo"))[1]
    for overrides in ({"correction.rows": "all"}, {"loss.clear_terms": "cor,ic"}, {"loss.class_weights": False}):
        assert not torch.equal(clear_rows_loss(load_config("demo", overrides=overrides))[1], paper), overrides


# ----------------------------------------------------------------------------- two processes at once


def _train_in_process(manifest, quick, out, role, first_training, second_waiting, results):
    """One of two processes that want the same stage 1. "first" holds stage 1's lock until
    "second" is waiting on it; "second" starts once "first" trains."""
    try:
        results.put((role, *_train_wanting_one_stage1(manifest, quick, out, role, first_training, second_waiting)))
    except BaseException as exc:  # the parent reports it instead of waiting for a result
        results.put((role, "failed", repr(exc)))
        raise


def _train_wanting_one_stage1(manifest, quick, out, role, first_training, second_waiting):
    torch.set_num_threads(1)
    config = short_config(quick)
    parted, fold = fold_of(config, manifest)
    on_epoch_end = None
    if role == "first":
        def on_epoch_end(stage, epoch):
            if (stage, epoch) == (STAGE1, 0):
                first_training.set()
                assert second_waiting.wait(120), "the second process never waited for stage 1"
    else:
        assert first_training.wait(120)
        announce = Stage1Store._waiting

        def waiting(self, path):
            announce(self, path)
            second_waiting.set()
        Stage1Store._waiting = waiting
    record = train_fold(config, parted, fold, out, progress=False, on_epoch_end=on_epoch_end)
    return record["stage1_reused"], record["history"]


def test_two_processes_train_one_stage1(tiny_corpus, tmp_path, quick):
    context = multiprocessing.get_context("spawn")
    first_training, second_waiting, results = context.Event(), context.Event(), context.Queue()
    processes = [context.Process(target=_train_in_process, args=(tiny_corpus, quick, tmp_path / role, role,
                                                                 first_training, second_waiting, results))
                 for role in ("first", "second")]
    for process in processes:
        process.start()
    outcome = {}
    for _ in processes:
        role, reused, history = results.get(timeout=240)
        assert reused != "failed", f"the {role} process failed: {history}"
        outcome[role] = (reused, history)
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert second_waiting.is_set()
    assert outcome["first"][0] is False and outcome["second"][0] is True  # trained once, loaded once
    assert outcome["first"][1] == outcome["second"][1]
    assert not runs.stage_checkpoint(tmp_path / "second", STAGE1).exists()
    assert same_weights(tmp_path / "first", tmp_path / "second")


# ----------------------------------------------------------------------------- corrupt entries


def tiny_stage(value: float):
    """A model and a `train` function that sets its weights to `value` and counts its calls."""
    model = torch.nn.Linear(3, 2)
    calls = []

    def train():
        calls.append(value)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(value)
        return StageProgress(epoch=1, best_epoch=1, best_score=(50.0, 60.0), done=True,
                             history=[{"stage": "stage1", "epoch": 0, "train_loss": 1.0}], train_seconds=2.0,
                             train_samples=8)
    return model, train, calls


def tamper(path):
    entry = torch.load(path, weights_only=True)
    entry["model"]["weight"] = entry["model"]["weight"] + 1  # still a valid file, with other weights
    torch.save(entry, path)


@pytest.mark.parametrize("corrupt", [lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                                     lambda p: p.write_bytes(b"not a checkpoint"), tamper],
                         ids=["truncated", "garbage", "tampered"])
def test_a_corrupt_entry_is_reported_and_trained_again(tmp_path, corrupt):
    identity = {"config": {"seed": 0}, "fold": "S1F"}
    store = Stage1Store(tmp_path / "cache")
    model, train, calls = tiny_stage(0.5)
    progress, reused = store.get_or_train(identity, model, train)
    assert not reused and calls == [0.5]
    path = store.entry_path(stage1_key(identity))
    corrupt(path)

    again, train_again, calls_again = tiny_stage(0.25)
    with pytest.warns(UserWarning, match=f"{re.escape(str(path))}.*unusable"):
        _, reused = store.get_or_train(identity, again, train_again)
    assert not reused and calls_again == [0.25] and store.corrupt == 1

    loader, never, not_called = tiny_stage(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is sound
        loaded, reused = store.get_or_train(identity, loader, never)
    assert reused and not not_called and loaded == progress
    assert all(torch.equal(p, torch.full_like(p, 0.25)) for p in loader.parameters())
