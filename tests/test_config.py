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
    ({"loss.alpha": 1.5}, "loss.alpha must be in [0, 1], got 1.5"),
    ({"loss.beta": -0.1}, "loss.beta must be >= 0"),
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
