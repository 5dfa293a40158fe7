"""Speaker-independent K-fold evaluation (eval.kfold): groups balanced by sex, leak-free validation."""

from collections import Counter
from dataclasses import replace

import pandas as pd
import pytest

from conftest import CREMAD_ROOT, needs_cremad
from ser_lib.config import EvalConfig, load_config
from ser_lib.data.labels import Partition, partition
from ser_lib.errors import ConfigError, ManifestError
from ser_lib.experiments.grid import Grid
from ser_lib.experiments.sweep import _fold_names
from ser_lib.notebook import with_first_folds
from ser_lib.data.folds import Fold, fold_names, kfold_folds, kfold_groups, loso_folds, make_folds, speaker_sexes, split_partition

CLASSES = ("anger", "happiness", "sadness", "neutral")
# One clear utterance per class, one ambiguous (anger, happiness, other) and one dropped per speaker.
SPEAKER_VOTES = [(3, 0, 0, 0, 0), (0, 3, 0, 0, 0), (0, 0, 3, 0, 0), (0, 0, 0, 3, 0), (1, 1, 0, 0, 1), (0, 0, 0, 0, 3)]
CREMA_LIKE = {f"{1001 + i}": "male" if i % 2 else "female" for i in range(86)} | \
             {f"{1087 + i}": "male" for i in range(5)}  # 91 speakers: 48 male, 43 female


def corpus(sexes: dict[str, str]) -> Partition:
    rows = [{"utt_id": f"{speaker}_{j}", "path": "x.wav", "speaker": speaker, "sex": sex,
             **{f"votes_{c}": n for c, n in zip(CLASSES, votes)}, "votes_other": votes[-1]}
            for speaker, sex in sexes.items() for j, votes in enumerate(SPEAKER_VOTES)]
    return partition(pd.DataFrame(rows))


def check_folds(folds: list[Fold], sexes: dict[str, str]) -> None:
    """Every speaker tested exactly once, no speaker in two roles of a fold, validation drawn from the
    fold's non-test speakers, groups balanced by sex within one speaker."""
    tested = Counter(s for fold in folds for s in fold.test_speakers)
    assert tested == Counter(list(sexes)), "every speaker is tested exactly once"
    for fold in folds:
        test, validation, train = set(fold.test_speakers), set(fold.validation_speakers), set(fold.train_speakers)
        assert test and validation and train
        assert not test & train and not test & validation and not validation & train, fold.name
        assert test | validation | train == set(sexes), fold.name
    for sex in set(sexes.values()):
        per_fold = [sum(sexes[s] == sex for s in fold.test_speakers) for fold in folds]
        assert max(per_fold) - min(per_fold) <= 1, (sex, per_fold)
    sizes = [len(fold.test_speakers) for fold in folds]
    assert max(sizes) - min(sizes) <= 1


def test_ten_folds_of_91_speakers_are_balanced_and_leak_free():
    parted = corpus(CREMA_LIKE)
    folds = make_folds(parted, EvalConfig(kfold=10, fold_seed=3))
    assert [f.name for f in folds] == [f"k{i:02d}-of-10" for i in range(1, 11)]
    assert not any(f.optimistic for f in folds)
    check_folds(folds, CREMA_LIKE)
    # 48 male and 43 female speakers: 4 or 5 of each per fold.
    for fold in folds:
        males = sum(CREMA_LIKE[s] == "male" for s in fold.test_speakers)
        assert 4 <= males <= 5 and 4 <= len(fold.test_speakers) - males <= 5
    # Leak-free validation: the next fold's test speakers (the last fold's: the first fold's).
    for fold, after in zip(folds, folds[1:] + folds[:1]):
        assert fold.validation_speakers == after.test_speakers
    assert "k03-of-10 (" in folds[2].describe()


def test_the_assignment_is_deterministic_for_a_seed():
    parted = corpus(CREMA_LIKE)
    config = EvalConfig(kfold=5, fold_seed=7)
    assert make_folds(parted, config) == make_folds(parted, config)
    shuffled = partition(parted.table.sample(frac=1.0, random_state=1).drop(columns=["subset", "label"]))
    assert make_folds(shuffled, config) == make_folds(parted, config), "row order does not matter"
    groups = {seed: kfold_groups(CREMA_LIKE, 5, seed) for seed in range(4)}
    assert len({tuple(g) for g in groups.values()}) == 4, "another seed, other folds"
    assert kfold_groups(CREMA_LIKE, 5, 0) == groups[0]
    # Pinned, recomputed by hand: sha256("0|a") ... ordered g c a f b e d, dealt to 3 groups in turn.
    # A change of the assignment would silently change every K-fold result.
    assert kfold_groups({s: "" for s in "abcdefg"}, 3, 0) == [("d", "f", "g"), ("b", "c"), ("a", "e")]


def test_paper_validation_and_chosen_folds():
    parted = corpus(CREMA_LIKE)
    paper = make_folds(parted, EvalConfig(kfold=4, validation="paper"))
    assert all(f.optimistic and f.validation_speakers == f.test_speakers for f in paper)
    assert all(len(f.train_speakers) == 91 - len(f.test_speakers) for f in paper)
    chosen = make_folds(parted, EvalConfig(kfold=4, folds=("k03-of-04", "k01-of-04")))
    assert [f.name for f in chosen] == ["k03-of-04", "k01-of-04"]
    assert chosen[0] == make_folds(parted, EvalConfig(kfold=4))[2]
    with pytest.raises(ConfigError, match=r"unknown fold\(s\) \['k05-of-04'\]"):
        make_folds(parted, EvalConfig(kfold=4, folds=("k05-of-04",)))
    with pytest.raises(ConfigError, match="needs at least 12 speakers; the corpus has 5"):
        make_folds(corpus({s: "male" for s in "abcde"}), EvalConfig(kfold=12))
    with pytest.raises(ConfigError, match="eval.kfold must be 0"):
        load_config("paper", overrides=["eval.kfold=2"])


def test_splits_of_a_kfold_fold():
    parted = corpus(CREMA_LIKE)
    fold = make_folds(parted, EvalConfig(kfold=10))[0]
    splits = {name: split.table for name, split in split_partition(parted, fold).items()}
    assert set(splits["test"]["speaker"]) == set(fold.test_speakers)
    assert len(splits["test"]) == 4 * len(fold.test_speakers)  # the clear utterances
    assert set(splits["test_ambiguous"]["speaker"]) == set(fold.test_speakers)
    assert set(splits["validation"]["speaker"]) == set(fold.validation_speakers)
    assert set(splits["train"]["speaker"]) == set(fold.train_speakers)
    with pytest.raises(ConfigError, match=rf"holds out {len(fold.test_speakers)} speakers, not one"):
        fold.test_speaker


def test_sex_column_problems():
    sexes = {"a": "female", "b": "male", "c": "female", "d": "male"}
    mixed = corpus(sexes)
    mixed.table.loc[mixed.table["utt_id"] == "a_0", "sex"] = "male"
    with pytest.raises(ManifestError, match=r"more than one sex: \{'a': \['female', 'male'\]\}"):
        make_folds(mixed, EvalConfig(kfold=3))
    partly = corpus({**sexes, "a": ""})
    with pytest.raises(ManifestError, match=r"sex column is empty for speaker\(s\) \['a'\]"):
        make_folds(partly, EvalConfig(kfold=3))
    # Without a sex column (EmoDB) the groups are balanced by size only.
    known = corpus(sexes)
    unknown = replace(known, table=known.table.drop(columns="sex"))
    assert speaker_sexes(unknown) == dict.fromkeys("abcd", "")
    check_folds(make_folds(unknown, EvalConfig(kfold=3)), dict.fromkeys("abcd", ""))


def test_loso_stays_the_default_everywhere():
    parted = corpus(CREMA_LIKE)
    assert EvalConfig().kfold == 0 and load_config("paper").eval.kfold == 0
    assert make_folds(parted) == loso_folds(parted)
    assert [f.name for f in make_folds(parted)] == fold_names(parted) == sorted(CREMA_LIKE)
    assert make_folds(parted)[0].test_speaker == "1001"
    config = load_config("demo", overrides={"eval.kfold": 10, "eval.fold_seed": 1})
    assert with_first_folds(config, parted, 2).eval.folds == ("k01-of-10", "k02-of-10")
    assert with_first_folds(load_config("demo"), parted, 2).eval.folds == ("1001", "1002")


def test_sweeps_run_the_kfold_folds():
    parted = corpus(CREMA_LIKE)
    grid = Grid(name="kfold", set={"eval.kfold": 5}, methods=("paper", "soft-static"), seeds=(0, 1))
    folds = grid.speakers(_fold_names(grid.name, grid.configs(), {"corpus": parted}))
    assert folds == [f"k{i:02d}-of-05" for i in range(1, 6)]
    mixed = Grid(name="mixed", grid={"eval.kfold": (0, 5)})
    with pytest.raises(ConfigError, match="use different folds"):
        _fold_names(mixed.name, mixed.configs(), {"corpus": parted})


@pytest.mark.cremad
@needs_cremad
def test_crema_d_speakers_in_ten_folds():
    """The real actors' sexes (VideoDemographics.csv): 48 male and 43 female in 10 balanced folds."""
    from ser_lib.data.corpora.cremad import read_demographics

    sexes = {actor: sex for actor, (sex, _) in read_demographics(CREMAD_ROOT / "VideoDemographics.csv").items()}
    assert Counter(sexes.values()) == {"male": 48, "female": 43}
    groups = kfold_groups(sexes, 10, 0)
    folds = kfold_folds(corpus(sexes), EvalConfig(kfold=10))
    assert [f.test_speakers for f in folds] == groups
    check_folds(folds, sexes)
