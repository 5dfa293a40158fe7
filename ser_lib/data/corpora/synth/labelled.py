"""Writing the labelled corpus: WAVs, the manifest and who gave which vote (`annotations.csv`)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ....config import OTHER, DataConfig, SynthConfig, check_synth_workers
from ...annotations import write_annotations
from ...manifest import write_manifest
from .annotators import annotator_id
from .emotions import target_classes
from .parallel import render_all
from .plan import plan_corpus
from .utterance import Utterance

_WAV_NAME = re.compile(r"Ses\d\d[FM]_u\d{4}\.wav")


def synthesize_corpus(
    out_dir: str | Path,
    seed: int = SynthConfig.seed,
    size: str = SynthConfig.size,
    progress: bool = True,
    *,
    workers: int = SynthConfig.workers,
    per_speaker: int | None = None,
    annotator_temperature: float = SynthConfig.annotator_temperature,
    annotator_confusion: float = SynthConfig.annotator_confusion,
) -> Path:
    """Generate the corpus in `out_dir` (WAVs under ``wav/``) and return its manifest path.

    A seed and size give byte-identical files for any number of `workers` (processes, at
    most one per `parallel.UTTERANCES_PER_WORKER` utterances since starting one costs time). An
    existing manifest is removed first and the new one written last, so an interrupted run
    never leaves a manifest pointing at missing or mismatched audio; WAVs of an earlier,
    larger corpus that the new one lacks are removed. `per_speaker` overrides the size's
    number of utterances per speaker.
    """
    check_synth_workers(workers)
    out_dir = Path(out_dir)
    utterances = plan_corpus(seed, size, per_speaker, annotator_temperature, annotator_confusion)
    manifest_path = out_dir / "manifest.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    _remove_stale_wavs(out_dir, {u.path for u in utterances})

    label = size if per_speaker is None else f"{per_speaker}/speaker"
    durations = render_all(utterances, out_dir, DataConfig().sample_rate, workers, f"synth {label}", progress)
    write_annotations(annotations_frame(utterances), manifest_path)
    return write_manifest(manifest_frame(utterances, durations), manifest_path)  # last: the corpus is complete


def manifest_frame(utterances: list[Utterance], durations: dict[int, float] | None = None) -> pd.DataFrame:
    """The manifest rows of planned utterances (``duration`` only when `durations` is given,
    keyed by utterance index)."""
    classes = target_classes()
    columns = {
        "utt_id": [u.utt_id for u in utterances],
        "path": [u.path for u in utterances],
        "speaker": [u.speaker for u in utterances],
        "session": [u.session for u in utterances],
    }
    if durations is not None:
        columns["duration"] = [durations[u.index] for u in utterances]
    columns |= {f"votes_{c}": [int(u.votes[k]) for u in utterances] for k, c in enumerate(classes)}
    columns["votes_other"] = [int(u.votes[-1]) for u in utterances]
    columns |= {f"true_{c}": [float(u.true[k]) for u in utterances] for k, c in enumerate(classes)}
    return pd.DataFrame(columns)


def annotations_frame(utterances: list[Utterance]) -> pd.DataFrame:
    """Who voted what (`annotations.csv`): annotators are named by session and their place in
    the session's pool (``Ses01-A3``), the same person for every utterance of that session."""
    labels = [*target_classes(), OTHER]
    rows = [(u.utt_id, annotator_id(u.session, a), labels[k]) for u in utterances for a, k in u.annotations]
    return pd.DataFrame(rows, columns=["utt_id", "annotator", "label"])


def _remove_stale_wavs(out_dir: Path, keep: set[str]) -> None:
    for path in (out_dir / "wav").glob("Ses*/*.wav"):
        relative = path.relative_to(out_dir).as_posix()
        if _WAV_NAME.fullmatch(path.name) and relative not in keep:
            path.unlink()
