"""The run folder: its layout, and the readers and writers of what training leaves in it.

    <run>/config.json                 the run's config (a resumed run must match its identity)
    <run>/manifest.txt                the absolute path of the manifest it was trained on
    <run>/fold-<speaker>/stage1.pt    per-epoch checkpoints of Algorithm 1's two stages
                        stage2.pt
                        model.pt      the trained model (`model.save_model`)
                        label_history.npz   every ambiguous training sample's y_s, y_c, y_g per epoch
                        predictions.csv     test predictions
                        embeddings.npz      fused test embeddings (t-SNE, Fig. 6)
                        fold_result.json    the fold's record; written last, it marks a finished fold
                        trial.json          in a sweep: the node, GPUs and device the trial ran on
    <run>/results.json, results.md, predictions.csv   over folds (`analysis.results`)

Every other module asks this one for a path or a reader, so the layout is spelled once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config, config_from_dict
from ..errors import ConfigError, SerError
from ..files import atomic_write, atomic_write_json, atomic_write_text
from .label_history import LabelHistory

FOLD_PREFIX = "fold-"
CONFIG_JSON = "config.json"
FOLD_RESULT = "fold_result.json"
LABEL_HISTORY = "label_history.npz"
EMBEDDINGS = "embeddings.npz"
PREDICTIONS_CSV = "predictions.csv"
MODEL = "model.pt"
MANIFEST_TXT = "manifest.txt"
TRIAL_JSON = "trial.json"
RESULTS_JSON, RESULTS_MD = "results.json", "results.md"


def stage_checkpoint(fold_dir: Path, stage: str) -> Path:
    return Path(fold_dir) / f"{stage}.pt"


def fold_dir(run_dir: str | Path, speaker: str) -> Path:
    return Path(run_dir) / f"{FOLD_PREFIX}{speaker}"


def fold_speaker(path: Path) -> str:
    return Path(path).name[len(FOLD_PREFIX):]


def fold_dirs(run_dir: str | Path) -> list[Path]:
    """The finished folds of a run, sorted by speaker."""
    return sorted(p for p in Path(run_dir).glob(f"{FOLD_PREFIX}*") if (p / FOLD_RESULT).exists())


def is_finished(fold: Path) -> bool:
    return (Path(fold) / FOLD_RESULT).exists()


# ----------------------------------------------------------------------------- config


def record_config(run_dir: Path, config: Config, resume: bool) -> None:
    """A resumed run must be the same experiment it was started as (`Config.identity`: runtime
    settings and fold selection may differ); a fresh run records its config."""
    recorded = Path(run_dir) / CONFIG_JSON
    if resume and recorded.exists():
        before = read_config(run_dir).identity()
        now = config.identity()
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            raise ConfigError(f"{run_dir} was started with a different config (sections {changed} differ); "
                              "resume it with the same settings or choose another output folder")
    atomic_write_text(recorded, config.to_json() + "\n")


def record_manifest(run_dir: Path, manifest_path: str | Path) -> None:
    """Remember the corpus a run was trained on, so that its audio can be found again later
    (the label-drift explorer, `ser dashboard`) without being told."""
    atomic_write_text(Path(run_dir) / MANIFEST_TXT, f"{Path(manifest_path).resolve()}\n")


def recorded_manifest(run_dir: str | Path) -> Path | None:
    """The manifest `record_manifest` remembered, or None when none was recorded or it has moved."""
    recorded = Path(run_dir) / MANIFEST_TXT
    if not recorded.exists():
        return None
    path = Path(recorded.read_text().strip())
    return path if path.is_file() else None


def read_config(run_dir: str | Path) -> Config:
    """The config a run was trained with (its ``config.json``)."""
    path = Path(run_dir) / CONFIG_JSON
    try:
        tree = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; pass the run's config explicitly") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    return config_from_dict(tree, source=str(path))


# ----------------------------------------------------------------------------- a fold's outputs


def write_fold_outputs(fold: Path, record: dict, predictions: pd.DataFrame, utt_ids, embeddings: np.ndarray,
                       labels: np.ndarray, probs: np.ndarray) -> None:
    """Test predictions, embeddings and the fold record, written last: its presence marks a
    finished fold."""
    fold = Path(fold)
    atomic_write_text(fold / PREDICTIONS_CSV,
                      predictions.to_csv(index=False, lineterminator="\n", float_format="%.6f"))
    with atomic_write(fold / EMBEDDINGS, "wb") as handle:
        np.savez(handle, utt_ids=np.array(utt_ids), embeddings=embeddings, labels=labels, probs=probs)
    atomic_write_json(fold / FOLD_RESULT, record)


def write_trial_info(fold: Path, info: dict) -> None:
    """Where a sweep trial ran (node, GPU ids, device); kept apart from the fold record, whose
    content must not depend on the machine that trained it."""
    Path(fold).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(fold) / TRIAL_JSON, info)


def read_trial_info(fold: Path) -> dict | None:
    path = Path(fold) / TRIAL_JSON
    return json.loads(path.read_text()) if path.exists() else None


def read_fold_record(fold: Path) -> dict:
    return json.loads((Path(fold) / FOLD_RESULT).read_text())


def read_fold_predictions(fold: Path) -> pd.DataFrame:
    return pd.read_csv(Path(fold) / PREDICTIONS_CSV, dtype={"speaker": str, "fold": str})


def fold_records(run_dir: str | Path) -> list[dict]:
    """The records of a run's finished folds, sorted by speaker."""
    return [read_fold_record(path) for path in fold_dirs(run_dir)]


def label_history_paths(run_dir: str | Path) -> list[Path]:
    """The label-store files of a run's folds, sorted by speaker (empty before any fold has trained)."""
    return sorted(Path(run_dir).glob(f"{FOLD_PREFIX}*/{LABEL_HISTORY}"))


def label_histories(run_dir: str | Path) -> dict[str, LabelHistory]:
    """The label store of every fold of a run that has one, keyed by test speaker, sorted."""
    run_dir = Path(run_dir)
    paths = label_history_paths(run_dir)
    if not paths:
        raise SerError(f"run folder {run_dir} has no {FOLD_PREFIX}*/{LABEL_HISTORY}: train it first "
                       "(a fold writes its label store when its training ends)")
    return {fold_speaker(path.parent): LabelHistory.load(path) for path in paths}


def fold_embeddings(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The fused test embeddings of each finished fold (test speaker -> embeddings, true class
    indices). Each fold has its own model, so the folds' embeddings live in different spaces."""
    out = {}
    for path in fold_dirs(run_dir):
        with np.load(path / EMBEDDINGS) as part:
            out[path.name.removeprefix(FOLD_PREFIX)] = (part["embeddings"], part["labels"])
    return out
