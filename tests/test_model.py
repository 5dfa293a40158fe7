"""The spatial-temporal model: variants, padding invariance, masking, encoder loading,
gradients, determinism and the stage-1 -> stage-2 hand-over."""

import dataclasses
import time

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from ser_lib.config import ModelConfig
from ser_lib.errors import ConfigError
from ser_lib.model import SERModel, TemporalClassifier, count_parameters
from ser_lib.model.encoder import build_encoder, tiny_encoder_config
from ser_lib.model.spatial import SpatialBranch
from ser_lib.model.masks import time_mask
from ser_lib.model.temporal import TemporalBranch, frame_lengths, frame_mask, receptive_field

NUM_CLASSES = 4
RATE = 16000
EMBEDDING_DIMS = {"spatial": 96, "temporal": 96, "integrated": 192, "full": 128}


def tiny_config(**changes) -> ModelConfig:
    return dataclasses.replace(ModelConfig(encoder="tiny"), **changes)


def make_batch(sample_lengths, fbank_lengths, seed=0):
    """A zero-padded batch of random waveforms and filterbanks with the given valid lengths."""
    generator = torch.Generator().manual_seed(seed)
    samples, frames = max(sample_lengths), max(fbank_lengths)
    waveform = torch.zeros(len(sample_lengths), samples)
    fbank = torch.zeros(len(fbank_lengths), frames, 40)
    for i, (n, f) in enumerate(zip(sample_lengths, fbank_lengths)):
        waveform[i, :n] = 0.1 * torch.randn(n, generator=generator)
        fbank[i, :f] = torch.randn(f, 40, generator=generator) * 3 - 5
    return {
        "waveform": waveform,
        "waveform_lengths": torch.tensor(sample_lengths),
        "fbank": fbank,
        "fbank_lengths": torch.tensor(fbank_lengths),
    }


def item(batch, i):
    """Item i of a batch alone, without padding."""
    n, f = int(batch["waveform_lengths"][i]), int(batch["fbank_lengths"][i])
    return {
        "waveform": batch["waveform"][i : i + 1, :n],
        "waveform_lengths": torch.tensor([n]),
        "fbank": batch["fbank"][i : i + 1, :f],
        "fbank_lengths": torch.tensor([f]),
    }


@pytest.mark.parametrize("variant", sorted(EMBEDDING_DIMS))
def test_variant_shapes(variant):
    torch.manual_seed(0)
    model = SERModel(tiny_config(variant=variant), NUM_CLASSES)
    out = model(make_batch([16000, 12000, 9000], [98, 73, 55]))
    assert out["logits"].shape == (3, NUM_CLASSES)
    assert out["embedding"].shape == (3, EMBEDDING_DIMS[variant]) == (3, model.embedding_dim)
    assert torch.isfinite(out["logits"]).all()
    assert (model.spatial is None) == (variant == "temporal")
    assert (model.temporal is None) == (variant == "spatial")
    assert (model.fusion is None) == (variant != "full")


def test_full_embedding_is_the_scaled_fusion_softmax():
    torch.manual_seed(0)
    model = SERModel(tiny_config(), NUM_CLASSES).eval()
    out = model(make_batch([16000, 12000], [98, 73]))
    width = model.fusion.output_dim
    assert torch.allclose(out["embedding"].sum(-1), torch.full((2,), float(width)), atol=1e-3)
    assert (out["embedding"] > 0).all()


def test_spatial_variant_needs_no_encoder_nor_waveform(monkeypatch):
    # The paper's encoder is not in the cache here; the spatial model must not even look.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = SERModel(ModelConfig(variant="spatial", encoder="facebook/wav2vec2-base-960h"), NUM_CLASSES)
    assert not any(isinstance(m, Wav2Vec2Model) for m in model.modules())
    batch = make_batch([16000], [98])
    out = model({"fbank": batch["fbank"], "fbank_lengths": batch["fbank_lengths"]})
    assert out["logits"].shape == (1, NUM_CLASSES)
    with pytest.raises(ConfigError, match="spatial"):
        SERModel(ModelConfig(variant="spatial"), NUM_CLASSES, encoder=build_encoder(tiny_config()))


def test_spatial_branch_ignores_padding():
    torch.manual_seed(0)
    branch = SpatialBranch(tiny_config())
    batch = make_batch([1] * 4, [37, 64, 101, 128], seed=1)
    branch.train()(batch["fbank"], batch["fbank_lengths"])  # non-trivial BatchNorm running stats
    branch.eval()
    with torch.no_grad():
        padded = branch(batch["fbank"], batch["fbank_lengths"])
        padded_4d = branch(batch["fbank"][:, None], batch["fbank_lengths"])
        alone = torch.cat([branch(item(batch, i)["fbank"], item(batch, i)["fbank_lengths"]) for i in range(4)])
    assert padded.shape == (4, 96)
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded_4d, padded)
    # The padding really is garbage-tolerant: changing it changes nothing.
    noisy = batch["fbank"].clone()
    noisy[0, 37:] = 100.0
    with torch.no_grad():
        torch.testing.assert_close(branch(noisy, batch["fbank_lengths"]), padded, atol=1e-5, rtol=1e-5)


def test_temporal_branch_ignores_padding():
    torch.manual_seed(0)
    branch = TemporalBranch(build_encoder(tiny_config())).eval()
    batch = make_batch([8000, 12345, 16000], [1, 1, 1], seed=2)
    with torch.no_grad():
        padded = branch(batch["waveform"], batch["waveform_lengths"])
        alone = torch.cat(
            [branch(item(batch, i)["waveform"], item(batch, i)["waveform_lengths"]) for i in range(3)]
        )
    torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-4)


def test_full_model_padded_batch_equals_items_alone():
    torch.manual_seed(0)
    model = SERModel(tiny_config(), NUM_CLASSES).eval()
    batch = make_batch([9000, 16000], [54, 98], seed=3)
    with torch.no_grad():
        padded = model(batch)["embedding"]
        alone = torch.cat([model(item(batch, i))["embedding"] for i in range(2)])
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-4)


def transformer_inputs(branch, batch):
    """The frames the transformer receives, i.e. after the encoder's SpecAugment."""
    seen = []
    hook = branch.encoder.encoder.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    try:
        branch(batch["waveform"], batch["waveform_lengths"])
    finally:
        hook.remove()
    return seen[0]


def masked_frames(branch, batch):
    frames = transformer_inputs(branch, batch)
    return (frames == branch.encoder.masked_spec_embed).all(-1).sum().item()


def test_time_masking_only_in_train_mode():
    torch.manual_seed(0)
    branch = TemporalBranch(build_encoder(tiny_config(mask_time_prob=0.3)))
    batch = make_batch([16000, 16000], [1, 1])
    assert masked_frames(branch.train(), batch) > 0
    assert masked_frames(branch.eval(), batch) == 0
    off = TemporalBranch(build_encoder(tiny_config(mask_time_prob=0.0))).train()
    assert not hasattr(off.encoder, "masked_spec_embed")
    frames = transformer_inputs(off, batch)
    assert torch.isfinite(frames).all() and (frames.abs().sum(-1) > 0).all()


def test_from_pretrained_roundtrip(tmp_path):
    torch.manual_seed(0)
    saved = Wav2Vec2Model(tiny_encoder_config(0.05)).eval()
    saved.save_pretrained(tmp_path)
    loaded = build_encoder(tiny_config(encoder=str(tmp_path), mask_time_prob=0.2)).eval()
    assert loaded.config.mask_time_prob == 0.2 and loaded.config.apply_spec_augment
    for (name, a), (_, b) in zip(saved.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    waveform = 0.1 * torch.randn(2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(saved(waveform).last_hidden_state, loaded(waveform).last_hidden_state)


def test_group_norm_encoder_warns_and_gets_no_attention_mask(tmp_path):
    torch.manual_seed(0)
    config = tiny_encoder_config(0.05)
    config.feat_extract_norm, config.do_stable_layer_norm = "group", False
    Wav2Vec2Model(config).save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="feat_extract_norm='group'"):
        model = SERModel(tiny_config(encoder=str(tmp_path)), NUM_CLASSES)
    assert not model.temporal.uses_attention_mask
    out = model.eval()(make_batch([9000, 16000], [54, 98]))
    assert torch.isfinite(out["logits"]).all()


def test_unknown_hub_name_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ConfigError) as error:
        build_encoder(tiny_config(encoder="nobody/no-such-wav2vec2"))
    assert time.monotonic() - start < 10
    message = str(error.value)
    for needed in ("nobody/no-such-wav2vec2", "HF_HUB_OFFLINE", "save_pretrained", "model.encoder=tiny"):
        assert needed in message


def test_missing_or_invalid_local_encoder_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "no" / "such" / "encoder"
    with pytest.raises(ConfigError, match="does not exist") as error:
        build_encoder(tiny_config(encoder=str(missing)))
    assert str(missing) in str(error.value) and "save_pretrained" in str(error.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="cannot load") as error:
        SERModel(tiny_config(encoder=str(empty)), NUM_CLASSES)
    assert str(empty) in str(error.value)


def test_gradients_reach_both_branches():
    torch.manual_seed(0)
    model = SERModel(tiny_config(), NUM_CLASSES).train()
    out = model(make_batch([16000, 12000], [98, 73]))
    torch.nn.functional.cross_entropy(out["logits"], torch.tensor([0, 2])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    for part in (model.spatial.parallel, model.spatial.convs[-1], model.temporal.encoder.feature_extractor,
                 model.temporal.encoder.encoder, model.temporal.pooling, model.fusion):
        assert sum(p.grad.abs().sum() for p in part.parameters()) > 0


def test_initialisation_is_deterministic_for_a_seed():
    def weights(seed):
        torch.manual_seed(seed)
        return SERModel(tiny_config(), NUM_CLASSES).state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def test_stage1_temporal_branch_moves_to_stage2():
    torch.manual_seed(0)
    stage1 = TemporalClassifier(tiny_config(), NUM_CLASSES)
    batch = make_batch([16000, 12000], [98, 73])
    out = stage1(batch)
    assert out["logits"].shape == (2, NUM_CLASSES) and out["embedding"].shape == (2, 96)
    optimizer = torch.optim.SGD(stage1.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(out["logits"], torch.tensor([1, 3])).backward()
    optimizer.step()

    stage2 = SERModel.from_stage1(stage1, tiny_config(variant="full"), NUM_CLASSES)
    trained = stage1.temporal.state_dict()
    assert all(torch.equal(trained[k], v) for k, v in stage2.temporal.state_dict().items())
    stage1.eval(), stage2.eval()
    with torch.no_grad():
        torch.testing.assert_close(stage2.temporal(batch["waveform"], batch["waveform_lengths"]),
                                   stage1(batch)["embedding"])
        # A copy, not shared: training stage 2 leaves the stage-1 model alone.
        next(stage2.temporal.parameters()).add_(1.0)
    assert not torch.equal(next(stage2.temporal.parameters()), next(stage1.temporal.parameters()))
    with pytest.raises(ConfigError, match="spatial"):
        SERModel.from_stage1(stage1, tiny_config(variant="spatial"), NUM_CLASSES)


def test_count_parameters():
    # Counted by hand: Linear(3, 4) has 3 * 4 + 4, Conv1d(4, 2, 5) 4 * 2 * 5 + 2, BatchNorm1d(2) a
    # weight and a bias (its running statistics are buffers); a layer used twice counts once.
    linear, conv, norm = torch.nn.Linear(3, 4), torch.nn.Conv1d(4, 2, 5), torch.nn.BatchNorm1d(2)
    layers = torch.nn.Sequential(linear, conv, norm, linear)
    assert count_parameters(layers) == count_parameters(layers, trainable_only=True) == 16 + 42 + 4
    conv.requires_grad_(False)
    assert (count_parameters(layers), count_parameters(layers, trainable_only=True)) == (62, 20)

    # The tiny encoder's conv feature encoder, by hand from `tiny_encoder_config`: bias-free convs
    # (in * out * kernel) and a layer norm (2 * out) per layer: 320 + 4 * 3072 + 4096 + 8192 of
    # weights, 2 * (5 * 32 + 2 * 64) of norms.
    torch.manual_seed(0)
    model = SERModel(tiny_config(), NUM_CLASSES)
    total = count_parameters(model)
    assert count_parameters(model, trainable_only=True) == total
    model.temporal.encoder.freeze_feature_encoder()
    assert total - count_parameters(model, trainable_only=True) == 25472


def test_items_shorter_than_one_frame_get_finite_outputs():
    torch.manual_seed(0)
    model = SERModel(tiny_config(), NUM_CLASSES).eval()
    batch = make_batch([100, 16000], [0, 98])
    with torch.no_grad():
        assert torch.isfinite(model(batch)["logits"]).all()


def test_bfloat16_autocast():
    torch.manual_seed(0)
    model = SERModel(tiny_config(), NUM_CLASSES).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(make_batch([16000, 9000], [98, 54]))
    assert torch.isfinite(out["logits"].float()).all()
    out["logits"].float().sum().backward()


def test_bad_class_count_and_lengths():
    with pytest.raises(ConfigError, match="num_classes"):
        SERModel(tiny_config(variant="spatial"), 1)
    model = SERModel(tiny_config(variant="spatial"), NUM_CLASSES)
    batch = make_batch([16000], [98])
    with pytest.raises(ValueError, match="fbank_lengths"):
        model({"fbank": batch["fbank"], "fbank_lengths": torch.tensor([99])})
    with pytest.raises(ValueError, match="fbank"):
        model({"waveform": batch["waveform"], "waveform_lengths": batch["waveform_lengths"]})


def test_spatial_input_normalisation_global_keeps_loudness_utterance_removes_it():
    torch.manual_seed(0)
    batch = make_batch([16000, 16000], [98, 98])
    louder = {**batch, "fbank": batch["fbank"] + torch.tensor([0.0, 3.0])[:, None, None]}
    louder["fbank"][0] = batch["fbank"][1] + 3.0  # item 0 = item 1, 3 log units louder
    louder["fbank"][1] = batch["fbank"][1]
    for mode, same in (("global", False), ("utterance", True)):
        torch.manual_seed(0)
        branch = SpatialBranch(tiny_config(spatial_norm=mode)).eval()
        branch.set_input_statistics(torch.full((40,), -2.0), torch.full((40,), 4.0))
        out = branch(louder["fbank"], louder["fbank_lengths"])
        assert torch.allclose(out[0], out[1], atol=1e-4) == same, mode
    state = branch.state_dict()
    assert torch.equal(state["input_mean"], torch.full((40,), -2.0)) and "input_std" in state


def test_precomputed_front_end_gives_the_same_outputs():
    """A frozen front end's features, computed once per segment, replace the conv stack exactly."""
    from torch.nn.utils.rnn import pad_sequence

    torch.manual_seed(0)
    model = SERModel(tiny_config(), NUM_CLASSES).eval()
    batch = make_batch([16000, 12000, 9000], [98, 73, 55])
    items = [batch["waveform"][i, : int(n)] for i, n in enumerate(batch["waveform_lengths"])]
    features = pad_sequence(model.temporal.front_end(items, batch_size=2), batch_first=True)
    alone = [model.temporal.front_end([w])[0] for w in items]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(alone, model.temporal.front_end(items)))
    with torch.no_grad():
        direct = model(batch)
        cached = model({**batch, "front_end": features})
    torch.testing.assert_close(cached["embedding"], direct["embedding"], rtol=1e-5, atol=1e-6)
    # In training, time masking still applies to the cached path (it acts after the front end) and
    # draws the masks `Wav2Vec2Model.forward` draws (both call transformers' `_mask_hidden_states`).
    model.train()
    trained, masked = [], []
    encoder = model.temporal.encoder
    hook = encoder.encoder.register_forward_pre_hook(
        lambda _, args: masked.append((args[0] == encoder.masked_spec_embed).all(-1)))
    for front_end in (None, features):
        torch.manual_seed(1), np.random.seed(1)
        trained.append(model.temporal.frames(batch["waveform"], batch["waveform_lengths"], front_end)[0])
    hook.remove()
    assert masked[0].sum() >= 2 * encoder.config.mask_time_length and torch.equal(masked[1], masked[0])
    torch.testing.assert_close(trained[1], trained[0], rtol=1e-4, atol=1e-5)


def test_frame_lengths_and_masks_equal_transformers():
    """`frame_lengths` / `frame_mask` replace transformers' private `_get_feat_extract_output_lengths` /
    `_get_feature_vector_attention_mask`: equal on the installed transformers, with and without an
    adapter, on the tiny encoder and on one with other kernels and strides."""
    other = Wav2Vec2Config(conv_dim=(8, 8, 8), conv_kernel=(7, 4, 3), conv_stride=(3, 2, 2), hidden_size=16,
                           num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                           num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2, add_adapter=True,
                           num_adapter_layers=2, adapter_stride=3, output_hidden_size=16)
    generator = torch.Generator().manual_seed(0)
    for config in (tiny_encoder_config(0.0), other):
        encoder = Wav2Vec2Model(config)
        first = receptive_field(config)
        lengths = torch.arange(first, first + 3000)
        for adapter in (False, True):
            assert torch.equal(frame_lengths(config, lengths, adapter),
                               encoder._get_feat_extract_output_lengths(lengths, add_adapter=adapter))
            width = first + 3000
            num_frames = int(frame_lengths(config, width, adapter))
            valid = torch.randint(first, width + 1, (64,), generator=generator)
            valid[:2] = torch.tensor([first, width])
            sample_mask = time_mask(valid, width).long()
            ours = frame_mask(config, sample_mask, num_frames, adapter)
            assert torch.equal(ours, encoder._get_feature_vector_attention_mask(num_frames, sample_mask, adapter))
            assert ours[0].sum() == 1 and ours[1].all()
    assert torch.equal(frame_lengths(tiny_encoder_config(0.0), torch.tensor([399, 400, 719, 720, 16000])),
                       torch.tensor([0, 1, 1, 2, 49]))
