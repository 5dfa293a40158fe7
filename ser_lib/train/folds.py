"""Leave-one-speaker-out folds (paper §V-A).

Each fold holds out one speaker for testing. Early stopping needs a validation set, and
which one it is decides whether the test score is honest:

- ``eval.validation = "session"`` (default, leak-free, the IEMOCAP convention): validate on
  the other speaker(s) of the test speaker's session and train on everyone else. With a
  ``session`` column the sessions come from the manifest. Without one (EmoDB) speakers are
  paired in sorted order into pseudo-sessions -- 03+08, 09+10, 11+12, ... -- and with an odd
  count the last three speakers form one group, so every speaker has a partner.
- ``eval.validation = "paper"``: validate on the test speaker itself, as the paper describes.
  Early stopping then sees the test speaker, so the fold is marked ``optimistic`` and every
  result written from it carries that label.

`split_frame` turns a fold into the rows of a partition table (`ser_lib.data.labels.partition`):
training uses clear and ambiguous samples of the training speakers, validation and test use
clear samples only, and dropped samples are never used. `prepare_fold` turns those rows into
the fold's segments (`FoldData`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..config import Config, EvalConfig
from ..data.cache import FeatureCache
from ..data.labels import AMBIGUOUS, CLEAR
from ..data.samples import Sample, build_samples
from ..errors import ConfigError, ManifestError
from ..method.targets import training_targets


@dataclass(frozen=True)
class Fold:
    test_speaker: str
    validation_speakers: tuple[str, ...]
    train_speakers: tuple[str, ...]
    # True when early stopping sees the test speaker (eval.validation = "paper").
    optimistic: bool = False

    def describe(self) -> str:
        tag = " [optimistic: validation = test speaker]" if self.optimistic else ""
        return (f"test {self.test_speaker} | validation {', '.join(self.validation_speakers)} | "
                f"train {len(self.train_speakers)} speakers{tag}")


def speakers_of(parted: pd.DataFrame) -> list[str]:
    """The corpus' speakers as sorted strings."""
    return sorted(parted["speaker"].astype(str).unique())


def session_groups(parted: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Speakers per (pseudo-)session.

    With a ``session`` column: the manifest's sessions (a speaker found in several sessions
    validates on the other speakers of all of them). Without one, or with an all-empty one:
    sorted speakers paired in order, the last group a triple when the count is odd.
    """
    speakers = speakers_of(parted)
    sessions = parted["session"].astype(str).str.strip() if "session" in parted.columns else None
    if sessions is None or (sessions == "").all():
        groups = [speakers[i:i + 2] for i in range(0, len(speakers), 2)]
        if len(groups) > 1 and len(groups[-1]) == 1:
            last = groups.pop()
            groups[-1] = groups[-1] + last
        return {"+".join(group): tuple(group) for group in groups}
    speaker_column = parted["speaker"].astype(str)
    missing = sorted(speaker_column[sessions == ""].unique())
    if missing:
        source = parted.attrs.get("source", "manifest")
        raise ManifestError(f"{source}: the session column is empty for some rows of speaker(s) {missing}; "
                            "fill it for every row or leave it empty everywhere")
    return {session: tuple(sorted(group.unique())) for session, group in speaker_column.groupby(sessions, sort=True)}


def loso_folds(parted: pd.DataFrame, eval_config: EvalConfig | None = None) -> list[Fold]:
    """One fold per speaker (sorted), or per speaker of ``eval_config.folds`` in that order."""
    eval_config = eval_config or EvalConfig()
    speakers = speakers_of(parted)
    if not speakers:
        raise ManifestError(f"{parted.attrs.get('source', 'manifest')}: no utterances, so no folds")
    test_speakers = _chosen_speakers(eval_config.folds, speakers)
    if eval_config.validation == "paper":
        if len(speakers) < 2:
            raise ConfigError(f"leave-one-speaker-out needs at least two speakers, the corpus has {speakers}")
        return [Fold(s, (s,), tuple(o for o in speakers if o != s), optimistic=True) for s in test_speakers]

    groups = session_groups(parted)
    folds = []
    for speaker in test_speakers:
        sessions = [name for name, members in groups.items() if speaker in members]
        validation = tuple(sorted({m for name in sessions for m in groups[name]} - {speaker}))
        if not validation:
            raise ConfigError(f"fold {speaker}: speaker {speaker} is alone in session {', '.join(sessions)}, so there "
                              "is no session partner to validate on; set eval.validation=paper or leave the "
                              "speaker out of eval.folds")
        train = tuple(s for s in speakers if s != speaker and s not in validation)
        if not train:
            raise ConfigError(f"fold {speaker}: no training speakers are left after the test speaker and the "
                              f"validation speaker(s) {list(validation)} (the corpus has {speakers}); "
                              "session validation needs at least two (pseudo-)sessions")
        folds.append(Fold(speaker, validation, train))
    return folds


def _chosen_speakers(folds: tuple, speakers: list[str]) -> list[str]:
    if not folds:
        return speakers
    chosen = [str(s) for s in folds]
    unknown = [s for s in chosen if s not in speakers]
    if unknown:
        raise ConfigError(f"eval.folds: unknown speaker(s) {unknown}; the corpus has speakers {speakers}")
    repeated = sorted({s for s in chosen if chosen.count(s) > 1})
    if repeated:
        raise ConfigError(f"eval.folds: speaker(s) {repeated} listed more than once")
    return chosen


def split_frame(parted: pd.DataFrame, fold: Fold) -> dict[str, pd.DataFrame]:
    """Rows of `parted` for each split of `fold`.

    - ``train``: clear and ambiguous samples of the training speakers;
    - ``validation``: clear samples of the validation speakers (early stopping);
    - ``test``: clear samples of the test speaker (WA, UA, F1);
    - ``test_ambiguous``: ambiguous samples of the test speaker (JS divergence to their soft labels).

    Dropped samples appear in no split, and the validation speakers' ambiguous samples are
    not used either (validation scores clear samples; training never sees those speakers).
    Raises ManifestError, naming the fold and the
    counts, when the test or validation split is empty or when some class has no clear
    training sample (stage 1 trains on clear samples and the class weights need every class).
    """
    if "subset" not in parted.columns or "classes" not in parted.attrs:
        raise ConfigError("split_frame needs a partition table (ser_lib.labels.partition), "
                          "with a subset column and attrs['classes']")
    speaker = parted["speaker"].astype(str)
    known = set(speaker)
    absent = [s for s in (fold.test_speaker, *fold.validation_speakers, *fold.train_speakers) if s not in known]
    if absent:
        raise ConfigError(f"fold {fold.test_speaker}: speaker(s) {absent} are not in this corpus")
    clear, ambiguous = parted["subset"] == CLEAR, parted["subset"] == AMBIGUOUS
    is_train = speaker.isin(fold.train_speakers)
    is_test = speaker == fold.test_speaker
    splits = {
        "train": parted[is_train & (clear | ambiguous)],
        "validation": parted[speaker.isin(fold.validation_speakers) & clear],
        "test": parted[is_test & clear],
        "test_ambiguous": parted[is_test & ambiguous],
    }
    _check_splits(parted, fold, splits)
    return {name: _with_attrs(frame, parted) for name, frame in splits.items()}


def _check_splits(parted: pd.DataFrame, fold: Fold, splits: dict[str, pd.DataFrame]) -> None:
    source = parted.attrs.get("source", "manifest")
    where = f"{source}, fold {fold.test_speaker}"
    for name, speakers in (("test", (fold.test_speaker,)), ("validation", fold.validation_speakers)):
        if splits[name].empty:
            rows = parted[parted["speaker"].astype(str).isin(speakers)]
            counts = rows["subset"].value_counts().to_dict()
            raise ManifestError(f"{where}: the {name} split (clear samples of {list(speakers)}) is empty; those "
                                f"speakers have {counts or 'no utterances'}. Leave the fold out via eval.folds")
    classes = parted.attrs["classes"]
    train_clear = splits["train"][splits["train"]["subset"] == CLEAR]
    per_class = {c: int((train_clear["label"] == c).sum()) for c in classes}
    lacking = [c for c, n in per_class.items() if n == 0]
    if lacking:
        raise ManifestError(f"{where}: no clear training sample of class(es) {lacking} (clear training samples "
                            f"per class: {per_class}); stage 1 and the class weights need every class")


def _with_attrs(frame: pd.DataFrame, parted: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.attrs = dict(parted.attrs)
    return frame


@dataclass
class FoldData:
    """The segments of one LOSO fold (see `split_frame`)."""

    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    test_ambiguous: list[Sample]
    classes: tuple[str, ...]

    @property
    def train_clear(self) -> list[Sample]:
        return [s for s in self.train if s.subset == CLEAR]

    @property
    def train_ambiguous(self) -> list[Sample]:
        return [s for s in self.train if s.subset == AMBIGUOUS]

    @property
    def every_sample(self) -> list[Sample]:
        return self.train + self.validation + self.test + self.test_ambiguous


def prepare_fold(parted: pd.DataFrame, fold: Fold, config: Config, cache: FeatureCache | None,
                 progress: bool = True) -> FoldData:
    splits = split_frame(parted, fold)

    def samples(name: str, subsets) -> list[Sample]:
        frame = splits[name]
        if len(frame) == 0:
            return []
        return build_samples(frame, config.data, config.features, cache, subsets=subsets, progress=progress)

    return FoldData(
        train=training_targets(samples("train", (CLEAR, AMBIGUOUS)), config.data.train_targets),
        validation=samples("validation", (CLEAR,)),
        test=samples("test", (CLEAR,)),
        test_ambiguous=samples("test_ambiguous", (AMBIGUOUS,)),
        classes=tuple(parted.attrs["classes"]),
    )
