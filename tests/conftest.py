"""Shared fixtures: the small synthetic corpus (generated once per test session) and the
paths of the real EmoDB corpus and CREMA-D ratings beside the repository, when they are there."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EMODB_ROOT = (ROOT.parent / "shared" / "data" / "emodb").resolve()
needs_emodb = pytest.mark.skipif(not (EMODB_ROOT / "erkennung.txt").exists(),
                                 reason=f"EmoDB not found at {EMODB_ROOT}")
CREMAD_ROOT = (ROOT.parent / "shared" / "data" / "crema-d").resolve()  # the ratings only, no audio
needs_cremad = pytest.mark.skipif(not (CREMAD_ROOT / "tabulatedVotes.csv").exists(),
                                  reason=f"CREMA-D ratings not found at {CREMAD_ROOT}")


@pytest.fixture
def quick(tmp_path) -> dict:
    """Config overrides for training in seconds: a tiny model, few epochs, a cache in tmp_path."""
    return {"train.batch_size": 4, "train.stage1_max_epochs": 2, "train.max_epochs": 3, "train.patience": 10,
            "model.conv_channels": "8,8,8,8,8", "model.fusion_dims": "16,16,16", "model.classifier_hidden": 8,
            "cache_dir": str(tmp_path / "cache")}


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """Manifest path of the `small` synthetic corpus with the default seed."""
    from ser_lib.config import SynthConfig
    from ser_lib.data.corpora.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("synth-small")
    return synthesize_corpus(out, seed=SynthConfig().seed, size="small", progress=False)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A manifest of 4 speakers in 2 sessions with 8 short utterances each: a harmonic tone whose
    pitch and loudness follow the class, plus noise. Small enough to train on in seconds."""
    import numpy as np
    import pandas as pd
    import soundfile

    root = tmp_path_factory.mktemp("tiny-corpus")
    rng = np.random.default_rng(0)
    classes = ["anger", "happiness", "sadness", "neutral"]
    pitch = {"anger": 220.0, "happiness": 300.0, "sadness": 110.0, "neutral": 160.0}
    rows = []
    for session in ("S1", "S2"):
        for gender in ("F", "M"):
            speaker = f"{session}{gender}"
            for i in range(8):
                name = classes[i % 4]
                votes = dict.fromkeys(classes, 0)
                if i < 6:  # clear: 3 of 3 votes
                    votes[name] = 3
                else:  # ambiguous: split between two classes
                    votes[name], votes[classes[(i + 1) % 4]] = 2, 2
                seconds = 1.0 + 0.25 * (i % 3)
                t = np.arange(int(16000 * seconds)) / 16000
                f0 = pitch[name] * (1.15 if gender == "F" else 1.0)
                wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
                wave = (0.1 + 0.1 * (name == "anger")) * wave + 0.01 * rng.standard_normal(len(t))
                path = f"wav/{speaker}_{i}.wav"
                (root / "wav").mkdir(exist_ok=True)
                soundfile.write(root / path, wave.astype(np.float32), 16000, subtype="PCM_16")
                rows.append({"utt_id": f"{speaker}_{i}", "path": path, "speaker": speaker, "session": session,
                             **{f"votes_{c}": v for c, v in votes.items()}, "votes_other": 0,
                             **{f"true_{c}": v / sum(votes.values()) for c, v in votes.items()}})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


# The files that take longest, longest first: `make test` starts them first, so that the two workers
# end together instead of one running a long file alone at the end (longest-processing-time-first
# scheduling). Seconds per file on a fresh clone, 2 cores, 2026-12-03: notebooks ~560, failures
# ~400, worker_jobs ~400, experiments ~330, book ~150, cluster ~130. A stale order costs time, never
# a result.
LONGEST_FIRST = ("test_notebooks.py", "test_failures.py", "test_worker_jobs.py", "test_experiments.py",
                 "test_book.py", "test_cluster.py", "test_placement.py", "test_browser.py", "test_training.py",
                 "test_pretrain.py", "test_stage1_sharing.py", "test_benchmarks.py", "test_bench.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which writes the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`: `--dist loadgroup --no-loadscope-reorder`), each file is one
    group, so its module fixtures (a sweep, a book build, a JupyterLab) are built once, on one
    worker; the groups go out in `LONGEST_FIRST` order, then the rest in file order. The files that
    start Ray clusters are groups of their own too: as one group they would run one after another on
    one worker, the longest path of the suite. tests/test_xdist_groups.py checks that the groups take
    effect (pytest 9.2 silently undid them, pytest-dev/pytest-xdist#1386)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order otherwise
    for item in items:
        item.add_marker(pytest.mark.xdist_group(item.path.name))
