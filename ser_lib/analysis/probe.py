"""A linear probe of a frozen encoder: how much emotion its representations carry before any fine-tuning.

Each clear utterance's segments go through the encoder (no masking, no training), the last hidden
states (or, with `layers="all"`, every layer's, side by side: what the frozen model's weighted sum
of layers can draw on) are averaged over valid frames and segments, and a logistic regression (scikit-learn) is
scored leave-one-speaker-out with balanced class weights: unweighted accuracy (UA) over the pooled
held-out predictions. With `model.encoder=DIR/{fold}` (one task-adaptive encoder per fold,
`train.task_adaptive`) each speaker is predicted from its own fold's encoder. It takes seconds, so it separates pretraining objectives before the slower
fine-tuning runs; it is not a substitute for them (`ser loso --set model.variant=temporal`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from ..config import Config
from ..data.inputs import utterance_inputs
from ..data.labels import CLEAR, Partition, partition
from ..data.manifest import read_manifest
from ..model.encoder import FOLD_PLACEHOLDER, build_encoder, encoder_audio, encoder_of_fold, most_marked
from ..model.temporal import TemporalBranch
from ..errors import ConfigError
from ..runtime import seed_all


PROBE_LAYERS = ("last", "all")


@torch.no_grad()
def pooled_embeddings(config: Config, parted: Partition, progress: bool = True, layers: str = "last") -> np.ndarray:
    """[utterances, features]: the frozen encoder's last hidden states averaged over frames and segments
    (hidden features), or every layer's (`layers="all"`: (layers + 1) x hidden features)."""
    seed_all(config.seed)  # a random encoder is drawn from torch's generator
    branch = TemporalBranch(build_encoder(config.model)).eval()
    rows = []
    for row in tqdm(parted.table.to_dict("records"), desc=f"probe {config.model.encoder}", unit="utt",
                    disable=not progress):
        segments = utterance_inputs(parted.root / row["path"], config.data, config.features,
                                    row.get("start"), row.get("end"))
        if layers == "all":  # each segment alone, as the frozen path caches them
            pooled = torch.stack([branch.layer_states(s.waveform[:s.num_valid_samples]).mean(0).flatten()
                                  for s in segments])
        else:
            waveform = torch.nn.utils.rnn.pad_sequence([s.waveform for s in segments], batch_first=True)
            hidden, frames = branch.frames(waveform, torch.tensor([s.num_valid_samples for s in segments]))
            pooled = (hidden * frames[..., None]).sum(1) / frames.sum(1, keepdim=True)
        rows.append(pooled.mean(0).numpy())
    return np.stack(rows)


def linear_probe(config: Config, manifest: str, progress: bool = True, layers: str = "last") -> dict:
    """Leave-one-speaker-out UA of a logistic regression on the frozen encoder's pooled states, clear
    utterances only; with the per-speaker UAs and what audio the encoder saw (`encoder_audio`)."""
    if layers not in PROBE_LAYERS:
        raise ConfigError(f"probe layers must be one of {PROBE_LAYERS}, got {layers!r}")
    clear = partition(read_manifest(manifest), config.data).of_subset(CLEAR)
    table = clear.table.reset_index(drop=True)
    labels, speakers = table["label"].to_numpy(), table["speaker"].astype(str).to_numpy()
    if FOLD_PLACEHOLDER in config.model.encoder:
        predicted, audio = _per_fold_predictions(config, clear, labels, speakers, progress, layers)
    else:
        features = pooled_embeddings(config, clear, progress, layers)
        predicted = cross_val_predict(_classifier(), features, labels, groups=speakers, cv=LeaveOneGroupOut())
        audio = encoder_audio(config.model.encoder, set(speakers))  # each is a test speaker once
    per_speaker = {speaker: float(recall_score(labels[idx], predicted[idx], average="macro", zero_division=0))
                   for speaker, idx in table.groupby(table["speaker"].astype(str)).indices.items()}
    return {"encoder": config.model.encoder, "layers": layers, "utterances": len(table), "encoder_audio": audio,
            "ua": float(recall_score(labels, predicted, average="macro")), "per_speaker_ua": per_speaker}


def _classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))


def _per_fold_predictions(config: Config, clear: Partition, labels, speakers, progress: bool, layers: str):
    """Each speaker's predictions from a classifier fitted on the others, all through that speaker's
    fold's encoder."""
    predicted = np.empty_like(labels)
    audio = []
    for speaker in sorted(set(speakers)):
        encoder = encoder_of_fold(config.model.encoder, speaker)
        fold_config = dataclasses.replace(config, model=dataclasses.replace(config.model, encoder=encoder))
        features = pooled_embeddings(fold_config, clear, progress, layers)
        test = speakers == speaker
        predicted[test] = _classifier().fit(features[~test], labels[~test]).predict(features[test])
        audio.append(encoder_audio(encoder, [speaker]))
    return predicted, most_marked(audio)
