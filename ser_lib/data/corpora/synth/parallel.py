"""Rendering a corpus' utterances to WAV files, in worker processes when there are enough of them.

Each file depends on its utterance alone (`render`), so any number of workers writes the same bytes.
"""

from __future__ import annotations

import io
import multiprocessing
from pathlib import Path

import numpy as np
import soundfile
from tqdm.auto import tqdm

from ....files import atomic_write_bytes
from .render import render_utterance
from .utterance import Utterance

# Starting a worker process costs about as much as rendering this many utterances.
UTTERANCES_PER_WORKER = 200


def render_all(utterances: list[Utterance], out_dir: Path, sample_rate: int, workers: int, desc: str,
               progress: bool) -> dict[int, float]:
    """Render and write every utterance (in `workers` processes, at most one per
    `UTTERANCES_PER_WORKER`); returns each one's duration in seconds, keyed by its index."""
    jobs = [(utt, str(out_dir), sample_rate) for utt in utterances]
    workers = max(1, min(workers, len(jobs) // UTTERANCES_PER_WORKER))
    durations: dict[int, float] = {}
    with tqdm(total=len(jobs), desc=desc, unit="utt", disable=not progress) as bar:
        if workers == 1:
            for index, duration in map(render_and_write, jobs):
                durations[index] = duration
                bar.update()
        else:
            # "spawn": workers must not inherit the parent's threads (torch) or locks.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for index, duration in pool.imap_unordered(render_and_write, jobs, chunksize=4):
                    durations[index] = duration
                    bar.update()
    return durations


def render_and_write(job: tuple[Utterance, str, int]) -> tuple[int, float]:
    """One job of `render_all`: render, write atomically, return (index, duration in seconds)."""
    utt, out_dir, sample_rate = job
    samples = render_utterance(utt, sample_rate)
    atomic_write_bytes(Path(out_dir) / utt.path, _wav_bytes(samples, sample_rate))
    return utt.index, round(len(samples) / sample_rate, 3)


def _wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
