"""Speaker-independent folds: leave-one-speaker-out (paper §V-A, the default) or K folds of speakers.

Each LOSO fold holds out one speaker for testing and is named after it. Early stopping needs a
validation set, and which one it is decides whether the test score is honest:

- ``eval.validation = "session"`` (default, leak-free, the IEMOCAP convention): validate on
  the other speaker(s) of the test speaker's session and train on everyone else. With a
  ``session`` column the sessions come from the manifest. Without one (EmoDB) speakers are
  paired in sorted order into pseudo-sessions -- 03+08, 09+10, 11+12, ... -- and with an odd
  count the last three speakers form one group, so every speaker has a partner.
- ``eval.validation = "paper"``: validate on the test speaker itself, as the paper describes.
  Early stopping then sees the test speaker, so the fold is marked ``optimistic`` and every
  result written from it carries that label.

With ``eval.kfold = K`` (`kfold_folds`, for corpora with many speakers such as CREMA-D's 91)
each fold holds out a group of speakers instead, named ``k03-of-10``. The groups are balanced
by the manifest's ``sex`` column and fixed by ``eval.fold_seed``. Leak-free validation uses the
next fold's group (fold K validates on fold 1's): drawn from the speakers the fold does not test,
never from its test group, and not trained on, as the session partner under LOSO. `make_folds`
picks the scheme.

`split_partition` turns a fold into rows of a `Partition` (`ser_lib.data.labels.partition`):
training uses clear and ambiguous samples of the training speakers, validation and test use
clear samples only, and dropped samples are never used. `train.fold_data.prepare_fold` turns
those rows into the fold's segments.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..config import EvalConfig
from ..errors import ConfigError, ManifestError
from .labels import AMBIGUOUS, CLEAR, Partition


@dataclass(frozen=True)
class Fold:
    # The fold's folder, seed and record name: the test speaker under LOSO, "k03-of-10" under K-fold.
    name: str
    validation_speakers: tuple[str, ...]
    train_speakers: tuple[str, ...]
    # True when early stopping sees the test speaker(s) (eval.validation = "paper").
    optimistic: bool = False
    # The held-out speakers; empty means (name,): a LOSO fold.
    test_speakers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.test_speakers:
            object.__setattr__(self, "test_speakers", (self.name,))

    @property
    def test_speaker(self) -> str:
        """The held-out speaker of a LOSO fold. A K-fold fold has several, so code written for one
        test speaker fails here instead of mistaking the fold's name for a speaker."""
        if len(self.test_speakers) != 1:
            raise ConfigError(f"fold {self.name} holds out {len(self.test_speakers)} speakers, not one; "
                              "use Fold.name and Fold.test_speakers")
        return self.test_speakers[0]

    def describe(self) -> str:
        tag = " [optimistic: validation = test speaker]" if self.optimistic else ""
        test = self.name if self.test_speakers == (self.name,) else f"{self.name} ({', '.join(self.test_speakers)})"
        return (f"test {test} | validation {', '.join(self.validation_speakers)} | "
                f"train {len(self.train_speakers)} speakers{tag}")


def speakers_of(parted: Partition) -> list[str]:
    """The corpus' speakers as sorted strings."""
    return sorted(parted.table["speaker"].astype(str).unique())


def session_groups(parted: Partition) -> dict[str, tuple[str, ...]]:
    """Speakers per (pseudo-)session.

    With a ``session`` column: the manifest's sessions (a speaker found in several sessions
    validates on the other speakers of all of them). Without one, or with an all-empty one:
    sorted speakers paired in order, the last group a triple when the count is odd.
    """
    speakers, table = speakers_of(parted), parted.table
    sessions = table["session"].astype(str).str.strip() if "session" in table.columns else None
    if sessions is None or (sessions == "").all():
        groups = [speakers[i:i + 2] for i in range(0, len(speakers), 2)]
        if len(groups) > 1 and len(groups[-1]) == 1:
            last = groups.pop()
            groups[-1] = groups[-1] + last
        return {"+".join(group): tuple(group) for group in groups}
    speaker_column = table["speaker"].astype(str)
    missing = sorted(speaker_column[sessions == ""].unique())
    if missing:
        raise ManifestError(f"{parted.source}: the session column is empty for some rows of speaker(s) {missing}; "
                            "fill it for every row or leave it empty everywhere")
    return {session: tuple(sorted(group.unique())) for session, group in speaker_column.groupby(sessions, sort=True)}


def make_folds(parted: Partition, eval_config: EvalConfig | None = None) -> list[Fold]:
    """The folds `eval_config` asks for: leave-one-speaker-out, or K folds with ``eval.kfold``."""
    eval_config = eval_config or EvalConfig()
    return kfold_folds(parted, eval_config) if eval_config.kfold else loso_folds(parted, eval_config)


def fold_names(parted: Partition, eval_config: EvalConfig | None = None) -> list[str]:
    """Every fold's name in order (not only those of ``eval.folds``): the sorted speakers under
    LOSO, ``k01-of-K`` ... ``kK-of-K`` under K-fold. Sweeps and notebooks pick folds from these."""
    eval_config = eval_config or EvalConfig()
    return kfold_names(eval_config.kfold) if eval_config.kfold else speakers_of(parted)


def loso_folds(parted: Partition, eval_config: EvalConfig | None = None) -> list[Fold]:
    """One fold per speaker (sorted), or per speaker of ``eval_config.folds`` in that order."""
    eval_config = eval_config or EvalConfig()
    speakers = speakers_of(parted)
    if not speakers:
        raise ManifestError(f"{parted.source}: no utterances, so no folds")
    test_speakers = _chosen(eval_config.folds, speakers, "speaker")
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


def kfold_names(k: int) -> list[str]:
    """``k01-of-10`` ... ``k10-of-10``: sortable, and saying how many folds there are."""
    width = max(2, len(str(k)))
    return [f"k{i:0{width}d}-of-{k:0{width}d}" for i in range(1, k + 1)]


def kfold_folds(parted: Partition, eval_config: EvalConfig) -> list[Fold]:
    """``eval.kfold`` folds of speakers (`kfold_groups`), or those of ``eval.folds`` in that order.

    Fold i tests on group i. Leak-free validation (``eval.validation = "session"``) uses group
    i + 1 (the last fold uses group 1), so every speaker is tested once and validates once, and
    the fold trains on the other K - 2 groups; ``"paper"`` validates on the test group itself
    and trains on the other K - 1 (optimistic). A fixed small number of validation speakers
    would leave more training data at small K; the next group is used because it is balanced by
    sex as well, by construction.
    """
    k = eval_config.kfold
    groups = kfold_groups(speaker_sexes(parted), k, eval_config.fold_seed)
    names = kfold_names(k)
    folds = []
    for name in _chosen(eval_config.folds, names, "fold"):
        i = names.index(name)
        test = groups[i]
        if eval_config.validation == "paper":
            validation, optimistic = test, True
        else:
            validation, optimistic = groups[(i + 1) % k], False
        train = tuple(s for g in groups for s in g if s not in test and s not in validation)
        folds.append(Fold(name, validation, tuple(sorted(train)), optimistic, test_speakers=test))
    return folds


def kfold_groups(sexes: dict[str, str], k: int, seed: int = 0) -> list[tuple[str, ...]]:
    """`k` groups of speakers, balanced by sex, the same for a seed on any machine.

    Within each sex (in sorted order) the speakers are ordered by a hash of (seed, speaker) --
    a shuffle that depends on nothing else -- and dealt to the groups in turn; the deal goes on
    across sexes from the group where it stopped. So group sizes differ by at most one speaker,
    and so do a sex's counts in any two groups. Speakers of unknown sex ("") form one stratum.
    """
    if k > len(sexes):
        raise ConfigError(f"eval.kfold={k} needs at least {k} speakers; the corpus has {len(sexes)}")
    groups: list[list[str]] = [[] for _ in range(k)]
    dealt = 0
    for sex in sorted(set(sexes.values())):
        members = sorted((s for s, x in sexes.items() if x == sex), key=lambda s: _shuffle_key(seed, s))
        for speaker in members:
            groups[dealt % k].append(speaker)
            dealt += 1
    return [tuple(sorted(group)) for group in groups]


def speaker_sexes(parted: Partition) -> dict[str, str]:
    """Each speaker's value of the manifest's ``sex`` column ("" for every speaker without one).

    A speaker with two values, or a column filled for some speakers only, is a ManifestError:
    the folds would be balanced on a wrong count.
    """
    speakers, table, source = speakers_of(parted), parted.table, parted.source
    if "sex" not in table.columns:
        return dict.fromkeys(speakers, "")
    values = table["sex"].astype(str).str.strip().groupby(table["speaker"].astype(str)).unique()
    mixed = {s: sorted(v) for s, v in values.items() if len(v) > 1}
    if mixed:
        raise ManifestError(f"{source}: speaker(s) with more than one sex: {mixed}")
    sexes = {str(s): str(v[0]) for s, v in values.items()}
    empty = sorted(s for s, x in sexes.items() if x == "")
    if empty and len(empty) < len(sexes):
        raise ManifestError(f"{source}: the sex column is empty for speaker(s) {empty}; fill it for every "
                            "speaker or leave it empty everywhere")
    return sexes


def _shuffle_key(seed: int, speaker: str) -> str:
    return hashlib.sha256(f"{seed}|{speaker}".encode("utf-8")).hexdigest()


def _chosen(folds: tuple, names: list[str], what: str) -> list[str]:
    """The fold names of ``eval.folds`` in their order (all of `names` when empty), checked."""
    if not folds:
        return names
    chosen = [str(s) for s in folds]
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise ConfigError(f"eval.folds: unknown {what}(s) {unknown}; the corpus has {what}s {names}")
    repeated = sorted({s for s in chosen if chosen.count(s) > 1})
    if repeated:
        raise ConfigError(f"eval.folds: {what}(s) {repeated} listed more than once")
    return chosen


def split_partition(parted: Partition, fold: Fold) -> dict[str, Partition]:
    """Rows of `parted` for each split of `fold`.

    - ``train``: clear and ambiguous samples of the training speakers;
    - ``validation``: clear samples of the validation speakers (early stopping);
    - ``test``: clear samples of the test speaker(s) (WA, UA, F1);
    - ``test_ambiguous``: ambiguous samples of the test speaker(s) (JS divergence to their soft labels).

    Dropped samples appear in no split, and the validation speakers' ambiguous samples are
    not used either (validation scores clear samples; training never sees those speakers).
    Raises ManifestError, naming the fold and the
    counts, when the test or validation split is empty or when some class has no clear
    training sample (stage 1 trains on clear samples and the class weights need every class).
    """
    if not isinstance(parted, Partition):
        raise ConfigError("split_partition needs a Partition (ser_lib.data.labels.partition), "
                          f"not {type(parted).__name__}")
    table = parted.table
    speaker = table["speaker"].astype(str)
    known = set(speaker)
    absent = [s for s in (*fold.test_speakers, *fold.validation_speakers, *fold.train_speakers) if s not in known]
    if absent:
        raise ConfigError(f"fold {fold.name}: speaker(s) {absent} are not in this corpus")
    clear, ambiguous = table["subset"] == CLEAR, table["subset"] == AMBIGUOUS
    is_train = speaker.isin(fold.train_speakers)
    is_test = speaker.isin(fold.test_speakers)
    splits = {
        "train": parted.rows(is_train & (clear | ambiguous)),
        "validation": parted.rows(speaker.isin(fold.validation_speakers) & clear),
        "test": parted.rows(is_test & clear),
        "test_ambiguous": parted.rows(is_test & ambiguous),
    }
    _check_splits(parted, fold, splits)
    return splits


def _check_splits(parted: Partition, fold: Fold, splits: dict[str, Partition]) -> None:
    where = f"{parted.source}, fold {fold.name}"
    table = parted.table
    for name, speakers in (("test", fold.test_speakers), ("validation", fold.validation_speakers)):
        if len(splits[name]) == 0:
            rows = table[table["speaker"].astype(str).isin(speakers)]
            counts = rows["subset"].value_counts().to_dict()
            raise ManifestError(f"{where}: the {name} split (clear samples of {list(speakers)}) is empty; those "
                                f"speakers have {counts or 'no utterances'}. Leave the fold out via eval.folds")
    train = splits["train"].table
    train_clear = train[train["subset"] == CLEAR]
    per_class = {c: int((train_clear["label"] == c).sum()) for c in parted.classes}
    lacking = [c for c, n in per_class.items() if n == 0]
    if lacking:
        raise ManifestError(f"{where}: no clear training sample of class(es) {lacking} (clear training samples "
                            f"per class: {per_class}); stage 1 and the class weights need every class")
