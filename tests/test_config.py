import pytest

from ser_lib.config import PROFILES, Config, load_config
from ser_lib.errors import ConfigError


def test_defaults_are_the_paper_settings():
    config = load_config("paper")
    assert (config.loss.alpha, config.loss.beta) == (0.3, 0.1)
    assert config.data.classes == ("anger", "happiness", "sadness", "neutral")
    assert (config.data.max_segment_s, config.data.min_segment_s, config.data.sample_rate) == (7.0, 1.5, 16000)
    assert (config.features.num_mel_bins, config.features.frame_length_ms, config.features.frame_shift_ms) == (40, 40.0, 10.0)


def test_overrides_from_strings_mapping_and_yaml_are_coerced(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("loss:\n  beta: 0.25\ndata:\n  classes: [anger, sadness]\n")
    config = load_config("paper", yaml_file, ["loss.alpha=0", "loss.ambiguous_terms=cor", "loss.class_weights=false"])
    assert config.loss.alpha == 0.0 and isinstance(config.loss.alpha, float)
    assert config.loss.beta == 0.25
    assert config.data.classes == ("anger", "sadness")
    assert config.loss.ambiguous_terms == ("cor",)
    assert config.loss.class_weights is False
    assert load_config(overrides={"seed": "7"}).seed == 7


@pytest.mark.parametrize("override, message", [
    ({"loss.alpha": 1.5}, "loss.alpha must be a number in [0, 1], got 1.5"),
    ({"loss.beta": -0.1}, "loss.beta must be a number >= 0"),
    ({"loss.ic_target": "truth"}, "loss.ic_target"),
    ({"loss.clear_terms": "ce"}, "loss.clear_terms"),
    ({"loss.gamma": 1}, "unknown config key 'loss.gamma'"),
    ({"nope.alpha": 1}, "unknown config key 'nope.alpha'"),
    ({"loss.alpha": "high"}, "cannot read 'high'"),
    ({"data.classes": "anger,other"}, "must not contain 'other'"),
])
def test_bad_values_get_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config("paper", overrides=override)


def test_unknown_profile_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        load_config("fast")
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("paper", bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("paper", tmp_path / "missing.yaml")


def test_every_profile_is_valid_and_serialisable():
    for name in PROFILES:
        config = load_config(name)
        assert isinstance(config, Config)
        assert '"alpha"' in config.to_json()


def test_tuple_fields_coerce_their_items():
    config = load_config("paper", overrides=["model.conv_channels=8,16,24,32,40", "eval.folds=03,08"])
    assert config.model.conv_channels == (8, 16, 24, 32, 40)
    assert config.eval.folds == ("03", "08")
    with pytest.raises(ConfigError, match="model.conv_channels"):
        load_config("paper", overrides={"model.conv_channels": "8,x,8,8,8"})


def test_runtime_settings_are_not_the_runs_identity(tmp_path):
    from ser_lib.analysis.runs import read_config, record_config

    started = load_config("demo", overrides={"runtime.device": "cpu", "runtime.threads": 1, "cache_dir": "a"})
    record_config(tmp_path, started, resume=False)
    assert read_config(tmp_path).runtime.device == "cpu"
    # Resumed elsewhere (another device, thread count, cache): the same experiment.
    record_config(tmp_path, load_config("demo", overrides={"runtime.threads": 2, "cache_dir": "b"}), resume=True)
    with pytest.raises(ConfigError, match=r"different config \(sections \['loss'\] differ\)"):
        record_config(tmp_path, load_config("demo", overrides={"loss.alpha": 0.0}), resume=True)


def test_configs_written_before_runtime_existed_still_load():
    from ser_lib.config import config_from_dict

    tree = load_config("demo").to_dict()
    runtime = tree.pop("runtime")
    tree["train"] |= {"device": "cpu", "num_workers": runtime["num_workers"]}
    assert config_from_dict(tree).runtime.device == "cpu"
    tree["train"]["lr"] = -1
    with pytest.raises(ConfigError, match="old.json: train.lr must be > 0"):
        config_from_dict(tree, source="old.json")


def test_presets_are_one_spelling_of_each_setting():
    from ser_lib.method.presets import FIG6_PRESETS, METHODS, PRESETS, apply_preset

    base = load_config("demo")
    baseline = apply_preset(base, "soft-static")
    assert baseline.loss.alpha == 0.0 and base.loss.alpha == 0.3  # a copy; the base is unchanged
    assert apply_preset(base, "paper").to_dict() == base.to_dict()
    assert apply_preset(base, "ic-ic").loss.clear_terms == ("ic",)
    assert apply_preset(base, "clear-hard").data.train_targets == "clear_only"
    assert set(FIG6_PRESETS) <= set(PRESETS) and set(METHODS) <= set(PRESETS)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        apply_preset(base, "nope")


def test_paper_profile_takes_the_papers_reading_of_the_open_points():
    paper, default = load_config("paper"), Config()
    assert (paper.data.segmentation, paper.train.bucket_by_length) == ("chunks", False)
    assert (paper.loss.ic_norm, paper.train.adam_eps) == ("ambiguous", 1e-5)
    assert paper.eval.validation == "session"  # leak-free unless eval.validation=paper
    assert (default.loss.ic_norm, default.loss.ic_form, default.train.adam_eps) == ("batch", "eq10", 1e-8)
    with pytest.raises(ConfigError, match="loss.ic_norm"):
        load_config(overrides={"loss.ic_norm": "n2"})
    with pytest.raises(ConfigError, match="train.adam_eps"):
        load_config(overrides={"train.adam_eps": 0})


def test_adam_eps_reaches_the_optimizer():
    import torch

    from ser_lib.train.stage import make_optimizer

    optimizer = make_optimizer(torch.nn.Linear(2, 2), load_config("paper").train)
    assert optimizer.param_groups[0]["eps"] == 1e-5


def test_training_targets_of_each_rule():
    import torch

    from ser_lib.data.samples import Sample
    from ser_lib.method.targets import training_targets

    def sample(name, subset, y):
        return Sample(name, name, "s", None, subset, torch.tensor(y), None, torch.zeros(8), 8, torch.zeros(1, 2), 1)

    samples = [sample("c", "clear", [0.0, 1.0, 0.0]), sample("a", "ambiguous", [0.4, 0.2, 0.4]),
               sample("b", "ambiguous", [0.1, 0.3, 0.6])]
    assert training_targets(samples, "soft") is samples
    assert [s.sample_id for s in training_targets(samples, "clear_only")] == ["c"]
    plurality = training_targets(samples, "plurality")
    assert [s.y_soft.tolist() for s in plurality] == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]  # a tie: the first class
    assert [s.subset for s in plurality] == ["clear", "ambiguous", "ambiguous"]
    assert samples[1].y_soft.tolist() == pytest.approx([0.4, 0.2, 0.4])  # the originals are unchanged
    with pytest.raises(ConfigError, match="data.train_targets"):
        training_targets(samples, "hard")


def test_ser_methods_lists_the_registry(capsys):
    from ser_lib.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("paper", "paper-running", "soft-static", "clear-hard", "plurality-hard"))
    assert "ic-ic" not in out
    assert main(["methods", "--all"]) == 0 and "ic-ic" in capsys.readouterr().out
