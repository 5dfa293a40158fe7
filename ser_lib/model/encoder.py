"""The Wav2Vec 2.0 encoder of the temporal branch, and where it comes from.

`model.encoder` names it: "tiny" is a small randomly initialised Wav2Vec2 for offline runs,
tests and teaching, and "small" and "medium" are larger ones of the same design (the size curve);
"tiny-pretrained" is the tiny architecture pretrained by `ser pretrain` on generated speech,
shipped with the package (`SHIPPED_ENCODERS`; `make encoder` rebuilds it); "base" is the
wav2vec2-base architecture with random weights, for measuring the paper's model size offline
(`ser bench`); anything else is a Hugging Face Hub
name or a local folder written by `save_pretrained`, loaded with `from_pretrained` (local
cache first, then the Hub unless offline mode is set). Every failure is a `ConfigError`
saying what to use instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import Wav2Vec2Config, Wav2Vec2Model

from ..config import BASE_ENCODER, MEDIUM_ENCODER, PRETRAINED_ENCODER, SMALL_ENCODER, TINY_ENCODER, ModelConfig
from ..errors import ConfigError


def tiny_encoder_config(mask_time_prob: float) -> Wav2Vec2Config:
    """A small Wav2Vec2 for offline runs and tests (`model.encoder=tiny`), 0.26 M parameters.

    It keeps wav2vec2's conv kernels and strides (320x downsampling: 50 frames/s at 16 kHz,
    400-sample receptive field) with narrow layers. Layer normalisation in the feature
    encoder (and pre-norm transformer layers) keeps padded batches exact with an attention
    mask, which the group-norm variant does not.
    """
    return _narrow_config(mask_time_prob, hidden_size=96, layers=2, intermediate_size=192, position_groups=4)


def small_encoder_config(mask_time_prob: float) -> Wav2Vec2Config:
    """The tiny encoder's front end with a 4-layer, 192-wide transformer (`model.encoder=small`), 1.97 M parameters."""
    return _narrow_config(mask_time_prob, hidden_size=192, layers=4, intermediate_size=768, position_groups=8)


def medium_encoder_config(mask_time_prob: float) -> Wav2Vec2Config:
    """The tiny encoder's front end with a 6-layer, 256-wide transformer (`model.encoder=medium`), 4.91 M
    parameters: 19.7 MB in fp32, the largest that fits the package's 20 MB."""
    return _narrow_config(mask_time_prob, hidden_size=256, layers=6, intermediate_size=1024, position_groups=16)


def _narrow_config(mask_time_prob: float, *, hidden_size: int, layers: int, intermediate_size: int,
                   position_groups: int) -> Wav2Vec2Config:
    # The conv front end stays narrow at every size: at 128 channels it alone costs more than
    # the medium transformer (measured: 8.3 s against 3.6 s per pretraining step on one thread).
    return Wav2Vec2Config(
        conv_dim=(32, 32, 32, 32, 32, 64, 64),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=intermediate_size,
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=position_groups,
        layerdrop=0.0,  # with two layers, dropping one is too much; kept at 0 at every size so only size varies
        apply_spec_augment=True,
        mask_time_prob=mask_time_prob,
    )


def base_encoder_config(mask_time_prob: float) -> Wav2Vec2Config:
    """The wav2vec2-base architecture (`model.encoder=base`), 94.4 M parameters.

    Hugging Face's `Wav2Vec2Config()` defaults are facebook/wav2vec2-base: 768 hidden, 12
    layers of 12 heads, 3072 intermediate, a group-norm feature encoder and post-norm
    transformer layers. Random weights: for measuring cost, not for accuracy.
    """
    return Wav2Vec2Config(apply_spec_augment=True, mask_time_prob=mask_time_prob)


# Encoders built from a config with random weights, without any download.
NAMED_ENCODERS = {TINY_ENCODER: tiny_encoder_config, SMALL_ENCODER: small_encoder_config,
                  MEDIUM_ENCODER: medium_encoder_config, BASE_ENCODER: base_encoder_config}
# Encoders shipped with the package as `save_pretrained` folders.
SHIPPED_ENCODERS = {PRETRAINED_ENCODER: Path(__file__).parent / "pretrained" / PRETRAINED_ENCODER}
# What `ser pretrain` records beside the weights: settings, sources, history (`train.pretrain`).
PRETRAINING_RECORD = "pretraining.json"


def pretraining_record(name: str) -> dict | None:
    """The `pretraining.json` of the encoder `model.encoder=name` loads: a shipped encoder's or a local
    folder's; None for a named random encoder, a Hub model or a folder not written by `ser pretrain`."""
    folder = SHIPPED_ENCODERS.get(name, Path(name).expanduser())
    path = folder / PRETRAINING_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


# In `model.encoder`, replaced by each fold's name: one encoder per fold (`train.task_adaptive`).
FOLD_PLACEHOLDER = "{fold}"


def encoder_of_fold(name: str, fold: str) -> str:
    """`model.encoder=name` for the fold named `fold`: `{fold}` replaced, the folder checked."""
    if FOLD_PLACEHOLDER not in name:
        return name
    encoder = name.replace(FOLD_PLACEHOLDER, fold)
    if not Path(encoder).expanduser().is_dir():
        raise ConfigError(f"model.encoder={name!r}: fold {fold} has no encoder folder {encoder}; build one per fold "
                          "with `ser pretrain --task-adaptive --per-fold --manifest M --out "
                          f"{name.split(FOLD_PLACEHOLDER)[0].rstrip('/') or '.'}`")
    return encoder


def absolute_encoder(name: str) -> str:
    """`model.encoder=name` with a local folder (or a `{fold}` template of folders) made absolute,
    for processes that run elsewhere (a sweep's workers); other names unchanged."""
    local = FOLD_PLACEHOLDER in name or (name not in SHIPPED_ENCODERS and Path(name).expanduser().is_dir())
    return str(Path(name).expanduser().absolute()) if local else name


# What audio an encoder was pretrained on, seen from a fold (`encoder_audio`), least marked first.
CORPUS_FREE, TASK_ADAPTIVE, TRANSDUCTIVE = "corpus-free", "task-adaptive", "transductive"
ENCODER_AUDIO = (CORPUS_FREE, TASK_ADAPTIVE, TRANSDUCTIVE)


def encoder_audio(name: str, test_speakers) -> str:
    """What audio the encoder `model.encoder=name` was pretrained on, seen from a fold holding out
    `test_speakers`:

    - "corpus-free": no evaluation corpus' audio (random weights, generated speech, unlabelled
      audio, or a model from elsewhere, which has no `pretraining.json` of ours);
    - "task-adaptive": an evaluation corpus' audio (`ser pretrain --task-adaptive`), none of it
      from the test speakers;
    - "transductive": the test speakers' audio too, e.g. one encoder adapted on the whole corpus.

    Speakers are compared by name, whatever corpus the encoder was adapted on: a name shared by
    two corpora marks a fold transductive that may not be, erring on the side of the mark.
    """
    record = pretraining_record(name)
    if record is None or not record.get("task_adaptive"):
        return CORPUS_FREE
    speakers = record.get("task_adaptive_speakers")
    if speakers is None:  # recorded before the speakers were: the test speakers cannot be ruled out
        return TRANSDUCTIVE
    return TRANSDUCTIVE if set(map(str, test_speakers)) & set(map(str, speakers)) else TASK_ADAPTIVE


def most_marked(values) -> str:
    """The most marked of several folds' `encoder_audio`; a missing one (None, or NaN in a report's frame:
    a fold without an encoder) counts as corpus-free."""
    return max((v if isinstance(v, str) else CORPUS_FREE for v in values), key=ENCODER_AUDIO.index,
               default=CORPUS_FREE)


def build_encoder(config: ModelConfig, attn_implementation: str | None = None) -> Wav2Vec2Model:
    """The Wav2Vec2 encoder named by `model.encoder`, with `model.mask_time_prob` set.

    The `NAMED_ENCODERS` ("tiny", "small", "medium", "base") are built from their configs with random
    weights (deterministic given torch's seed). Anything else goes to
    `Wav2Vec2Model.from_pretrained`: an existing local folder (written by `save_pretrained`)
    is read with local_files_only; a Hub name is first looked up in the local Hugging Face
    cache, then, unless HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set, downloaded (without
    network, huggingface_hub retries for ~25 s before failing). Failure raises ConfigError.

    `attn_implementation` ("eager", "sdpa", ...) replaces transformers' default (None keeps
    it). `ser bench` asks for "eager": its explicit attention matmuls are what a FLOP
    counter sees, while fused SDPA kernels may go uncounted.
    """
    encoder = _build_named_or_loaded(config)
    if attn_implementation is not None:
        try:
            encoder.set_attn_implementation(attn_implementation)
        except ValueError as exc:
            raise ConfigError(f"attn_implementation={attn_implementation!r} is not available: "
                              f"{str(exc).splitlines()[0]}") from None
    return encoder


def _build_named_or_loaded(config: ModelConfig) -> Wav2Vec2Model:
    if config.encoder in NAMED_ENCODERS:
        return Wav2Vec2Model(NAMED_ENCODERS[config.encoder](config.mask_time_prob))
    name = config.encoder
    if name in SHIPPED_ENCODERS:
        folder = SHIPPED_ENCODERS[name]
        if not (folder / "model.safetensors").is_file():
            raise ConfigError(f"model.encoder={name!r}: the shipped encoder is missing from {folder}; "
                              "rebuild it with `make encoder`")
        return _from_pretrained(str(folder), name, config.mask_time_prob, local_files_only=True)
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_pretrained(str(path), name, config.mask_time_prob, local_files_only=True)
    if _looks_like_path(name):
        problem = "is a file, not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"model.encoder={name!r}: the folder {path} {problem}. {_ENCODER_HINT}")
    try:  # a Hub name: the local cache first, without touching the network
        return _from_pretrained(name, name, config.mask_time_prob, local_files_only=True)
    except ConfigError:
        if _offline():
            raise ConfigError(
                f"model.encoder={name!r} is not in the local Hugging Face cache and "
                f"HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set, so it cannot be downloaded. {_ENCODER_HINT}"
            ) from None
    return _from_pretrained(name, name, config.mask_time_prob, local_files_only=False)


_ENCODER_HINT = (
    "Use a Hugging Face model name with internet access (e.g. facebook/wav2vec2-base-960h), "
    "a local folder written by Wav2Vec2Model.save_pretrained(folder) (model.encoder=/path/to/folder), "
    f"the shipped pretrained encoder model.encoder={PRETRAINED_ENCODER}, "
    f"or an offline encoder with random weights: model.encoder={TINY_ENCODER}, {SMALL_ENCODER}, {MEDIUM_ENCODER} or "
    f"model.encoder={BASE_ENCODER} (the wav2vec2-base architecture)."
)


def _from_pretrained(source: str, name: str, mask_time_prob: float, local_files_only: bool) -> Wav2Vec2Model:
    try:
        # Passing mask_time_prob here sets it on the loaded config before the model is
        # built, so `masked_spec_embed` exists even if the checkpoint had masking off.
        return Wav2Vec2Model.from_pretrained(
            source, mask_time_prob=mask_time_prob, apply_spec_augment=True, local_files_only=local_files_only
        )
    except Exception as exc:  # hub, network, file and format errors all mean "cannot use it"
        where = "locally" if local_files_only else "locally or from the Hugging Face Hub"
        raise ConfigError(
            f"model.encoder={name!r}: cannot load a Wav2Vec2 model {where} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). {_ENCODER_HINT}"
        ) from exc


def _looks_like_path(name: str) -> bool:
    # Hub names are "model" or "owner/model"; more slashes, a backslash or a leading
    # ".", "/" or "~" can only mean a folder.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read the environment too, so that
    # setting it later in the process (a notebook, a test) is honoured.
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.is_offline_mode() or any(f and f.upper() in ("1", "ON", "YES", "TRUE") for f in flags)
