"""The frozen-encoder path (model.encoder_mode=frozen): every layer's hidden states computed once per
segment and cached, a learned weighted sum of layers, and runs that resume byte-identically."""

import warnings
from pathlib import Path

import pytest
import torch

from ser_lib.config import load_config
from ser_lib.data.cache import FeatureCache
from ser_lib.data.labels import load_partition
from ser_lib.model import SERModel, TemporalClassifier
from ser_lib.model.temporal import normalize_waveform
from ser_lib.runtime import seed_all
from ser_lib.train.algorithm import train_fold
from ser_lib.data.folds import loso_folds
from ser_lib.train.fold_data import prepare_fold
from ser_lib.train.frozen import KIND, attach_hidden_states, encoder_digest

CPU = torch.device("cpu")


def frozen_config(quick, **overrides):
    return load_config("demo", overrides={**quick, "model.encoder": "tiny", "model.encoder_mode": "frozen",
                                          **overrides})


@pytest.fixture
def fold_data(tiny_corpus, quick):
    config = frozen_config(quick)
    parted = load_partition(tiny_corpus, config.data)
    config.eval.folds = ("S1F",)
    (fold,) = loso_folds(parted, config.eval)
    return config, prepare_fold(parted, fold, config, None, progress=False)


def direct_layers(encoder, waveform: torch.Tensor) -> torch.Tensor:
    """What the encoder itself returns for one segment: [frames, layers + 1, hidden]."""
    x = waveform[None]
    mask = torch.ones_like(x, dtype=torch.long)
    with torch.no_grad():
        out = encoder.eval()(normalize_waveform(x, mask), attention_mask=mask, output_hidden_states=True)
    return torch.stack([*out.hidden_states[:-1], out.last_hidden_state], dim=2)[0]


def cached_branch(config, data, cache_dir):
    """A frozen temporal branch (seed 0) whose hidden states of the fold were just computed into a
    fresh cache."""
    seed_all(0)
    temporal = TemporalClassifier(config.model, 4).temporal
    cache = FeatureCache(cache_dir)
    attach_hidden_states(temporal, data, cache, CPU, progress=False)
    return temporal, cache


def test_cached_hidden_states_equal_a_direct_forward_pass(fold_data, tmp_path):
    config, data = fold_data
    temporal, cache = cached_branch(config, data, tmp_path / "cache")
    samples = data.every_sample
    assert cache.misses == len(samples) and cache.hits == 0
    layers = temporal.encoder.config.num_hidden_layers + 1
    for sample in samples:
        direct = direct_layers(temporal.encoder, sample.waveform)
        assert sample.hidden_states.shape == (direct.shape[0], layers, temporal.output_dim)
        torch.testing.assert_close(sample.hidden_states, direct, rtol=0, atol=1e-5)
    first = [s.hidden_states for s in samples]

    attach_hidden_states(temporal, data, cache, CPU, progress=False)  # now from disk, bit for bit
    assert cache.hits == len(samples)
    assert all(torch.equal(a, s.hidden_states) for a, s in zip(first, samples))


def test_the_model_pools_cached_states_as_it_pools_states_it_computes(fold_data):
    config, data = fold_data
    model = SERModel(config.model, 4).eval()
    attach_hidden_states(model.temporal, data, None, CPU, progress=False)
    from ser_lib.data.batching import collate

    batch = collate(list(enumerate(data.test)))
    assert "hidden_states" in batch
    with torch.no_grad():
        cached = model(batch)["logits"]
        computed = model({k: v for k, v in batch.items() if k not in ("hidden_states", "hidden_lengths")})["logits"]
    torch.testing.assert_close(cached, computed, rtol=0, atol=1e-5)


def test_the_key_changes_with_the_encoder_weights_and_a_corrupt_entry_is_recomputed(fold_data, tmp_path):
    config, data = fold_data
    temporal, cache = cached_branch(config, data, tmp_path / "cache")
    before = [s.hidden_states for s in data.every_sample]
    digest = encoder_digest(temporal)

    weight = temporal.encoder.encoder.layers[0].feed_forward.output_dense.weight
    original = weight.detach().clone()
    with torch.no_grad():
        weight.add_(0.01)
    assert encoder_digest(temporal) != digest
    misses = cache.misses
    attach_hidden_states(temporal, data, cache, CPU, progress=False)
    assert cache.misses == misses + len(before), "other weights must never read the old entries"
    assert not torch.equal(before[0][:, -1], data.every_sample[0].hidden_states[:, -1])
    with torch.no_grad():
        weight.copy_(original)
    assert encoder_digest(temporal) == digest

    entries = sorted((tmp_path / "cache" / KIND).rglob("*.npz"))
    assert len(entries) == 2 * len(before)
    victim = data.every_sample[0]
    hits, corrupt = cache.hits, cache.corrupt
    for entry in entries:  # truncate every entry of one weights: which file is the victim's is the cache's business
        entry.write_bytes(entry.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attach_hidden_states(temporal, data, cache, CPU, progress=False)
    assert cache.corrupt == corrupt + len(before) and cache.hits == hits
    assert any("unreadable" in str(w.message) for w in caught)
    torch.testing.assert_close(victim.hidden_states, before[0], rtol=0, atol=0)


class Interrupt(Exception):
    pass


def test_a_frozen_run_resumes_byte_identically_and_never_trains_the_encoder(tiny_corpus, tmp_path, quick):
    config = frozen_config(quick)
    parted = load_partition(tiny_corpus, config.data)
    config.eval.folds = ("S1F",)
    (fold,) = loso_folds(parted, config.eval)
    cache = FeatureCache(config.cache_dir)
    straight = train_fold(config, parted, fold, tmp_path / "straight", cache, progress=False)

    def stop_in_stage2(stage, epoch):
        if (stage, epoch) == ("stage2", 1):
            raise Interrupt

    with pytest.raises(Interrupt):
        train_fold(config, parted, fold, tmp_path / "resumed", cache, progress=False, on_epoch_end=stop_in_stage2)
    resumed = train_fold(config, parted, fold, tmp_path / "resumed", cache, resume=True, progress=False)

    assert resumed["ua"] == straight["ua"] and resumed["best_epoch"] == straight["best_epoch"]
    for name in ("predictions.csv", "label_history.npz"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    weights = torch.load(Path(tmp_path / "straight" / "model.pt"), weights_only=True)["model"]
    resumed_weights = torch.load(Path(tmp_path / "resumed" / "model.pt"), weights_only=True)["model"]
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)

    seed_all(0)  # the encoder in the saved model is the one it started from: the stage-1 init of this fold
    from ser_lib.train.algorithm import STAGE1, stage_seed

    seed_all(stage_seed(config.seed, fold.name, STAGE1))
    initial = TemporalClassifier(config.model, 4).temporal.encoder.state_dict()
    assert all(torch.equal(initial[k], weights[f"temporal.encoder.{k}"]) for k in initial)
    layer_weights = weights["temporal.layers.weights"]
    assert layer_weights.shape == (3,) and not torch.equal(layer_weights, torch.zeros(3)), "the layer weights train"
