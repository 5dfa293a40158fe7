"""The classic SER baseline: openSMILE functionals and a linear SVM (`ser methods`: smile-svm).

Each utterance is described by the functionals of the feature sets `train.smile_sets`
(eGeMAPS v02, 88 features, Eyben et al. 2016; ComParE 2016, 6,373 features, Schuller et al. 2016),
computed by the `opensmile` package on the same 16 kHz mono audio the neural model reads
(`data.audio.load_audio`). A standardiser and a linear SVM (scikit-learn `LinearSVC`, C =
`train.svm_c`, balanced class weights like eq. 7's) are fitted on the clear utterances of the
fold's training speakers and scored on the test speaker's clear utterances, so the numbers sit
beside the neural methods' on the same folds. The validation speakers are not needed (nothing
is early-stopped) and are left out, as they are from the neural training set.

The fold folder has the usual `fold_result.json` and `predictions.csv`. Its "probabilities" are
a softmax of the SVM's decision values: scores for ranking, not calibrated probabilities.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.special import softmax
from tqdm.auto import tqdm

from ..analysis import runs
from ..analysis.metrics import classification_metrics
from ..analysis.results import fold_record, predictions_frame
from ..config import Config
from ..data.audio import load_audio
from ..data.cache import FeatureCache
from ..data.folds import Fold, split_partition
from ..data.inputs import optional_float
from ..data.labels import CLEAR, Partition
from ..errors import ConfigError


def smile_functionals(path: Path, start: float | None, end: float | None, config: Config,
                      cache: FeatureCache | None = None) -> np.ndarray:
    """The functionals of every set in `train.smile_sets`, concatenated [F], cached per file."""
    def compute() -> np.ndarray:
        import opensmile

        waveform = load_audio(path, config.data.sample_rate, start, end, mixdown=config.data.mixdown,
                              resample=config.data.resample).numpy()
        parts = [_extractor(name).process_signal(waveform, config.data.sample_rate).to_numpy().ravel()
                 for name in config.train.smile_sets]
        return np.concatenate(parts).astype(np.float32)

    if cache is None:
        return compute()
    params = {"sets": list(config.train.smile_sets), "sample_rate": config.data.sample_rate,
              "start": start, "end": end, "mixdown": config.data.mixdown}
    return np.asarray(cache.get_or_compute("smile", path, params, compute))


_EXTRACTORS: dict = {}


def _extractor(name: str):
    import opensmile

    if name not in _EXTRACTORS:
        try:
            feature_set = opensmile.FeatureSet[name]
        except KeyError:
            raise ConfigError(f"train.smile_sets: unknown openSMILE feature set {name!r}; choose from "
                              f"{[s.name for s in opensmile.FeatureSet]}") from None
        _EXTRACTORS[name] = opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)
    return _EXTRACTORS[name]


def utterance_matrix(parted: Partition, config: Config, cache: FeatureCache | None, progress: bool) -> np.ndarray:
    """Functionals of every utterance of a partition [N, F]."""
    rows = [smile_functionals(parted.root / row["path"], optional_float(row, "start"), optional_float(row, "end"),
                              config, cache)
            for row in tqdm(parted.table.to_dict("records"), desc="openSMILE", leave=False, disable=not progress)]
    return np.stack(rows)


def train_svm_fold(config: Config, parted: Partition, fold: Fold, fold_dir: str | Path,
                   progress: bool = True) -> dict:
    """Fit on the clear training utterances, evaluate on the test speaker; write the fold folder."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    classes = parted.classes
    cache = FeatureCache(config.cache_dir)
    splits = split_partition(parted, fold)
    train, test = splits["train"].of_subset(CLEAR), splits["test"]
    x_train, x_test = (utterance_matrix(split, config, cache, progress) for split in (train, test))
    train, test = train.table, test.table
    y_train = np.array([classes.index(label) for label in train["label"]])
    y_test = np.array([classes.index(label) for label in test["label"]])
    model = make_pipeline(StandardScaler(), LinearSVC(C=config.train.svm_c, class_weight="balanced",
                                                      max_iter=20000, random_state=config.seed))
    model.fit(x_train, y_train)
    scores = model.decision_function(x_test)
    probs = softmax(scores, axis=1)
    metrics = classification_metrics(y_test, probs.argmax(axis=1), classes)
    record = fold_record(fold, metrics, train_seconds=time.perf_counter() - started,
                         num_train={"clear": len(train), "ambiguous": 0},
                         num_features=int(x_train.shape[1]), history=[])
    predictions = predictions_frame(test["utt_id"].tolist(), test["speaker"].astype(str).tolist(), fold.name,
                                    test["label"].tolist(), probs, classes)
    runs.write_fold_outputs(Path(fold_dir), record, predictions, test["utt_id"].tolist(), scores.astype(np.float32),
                            y_test, probs)
    return record

