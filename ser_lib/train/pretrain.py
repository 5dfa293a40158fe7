"""`ser pretrain`: self-supervised pretraining of the temporal branch's encoder on unlabelled audio.

The output folder is a `save_pretrained` folder (config.json, model.safetensors) that
`model.encoder=FOLDER` loads with no other change, plus `pretraining.json` (settings, sources,
the loss history, throughput, the collapse check) and `pretraining_curves.png`.

Sources: manifests (labels and votes ignored) and audio folders. A manifest with vote columns
belongs to an evaluation corpus, and pretraining on it is task-adaptive pretraining: it is refused
unless asked for (`task_adaptive=True`, `ser pretrain --task-adaptive`), and recorded as such, with
the speakers whose audio it used (`task_adaptive_speakers`); `leave_out_speakers` keeps some out
(`train.task_adaptive` builds one encoder per fold that way, and checks the record). With
no source, the generated pretraining speech (`synth.unlabelled`, `pretrain.hours`,
`pretrain.synthesizer`) is used, made first if missing.

A run checkpoints atomically every `pretrain.checkpoint_every` steps (model, optimiser, schedule,
RNG states, history) and `resume=True` continues it; every batch is drawn from a generator seeded
by (seed, step), so a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from ..config import Config, FeatureConfig, ModelConfig, PretrainConfig
from ..data.audio import load_audio
from ..data.distortions import distort, room_impulse_responses
from ..data.features import fbank
from ..data.manifest import audio_path, read_manifest, vote_classes
from ..data.prosody import prosody_frames, standardize
from ..errors import ConfigError, SerError, TrainingError
from ..files import atomic_write_json
from ..model.encoder import NAMED_ENCODERS, PRETRAINING_RECORD, build_encoder
from ..model.pretraining import build_objective, collapse_reasons
from ..runtime import (load_checkpoint, matmul_peak_gflops, rng_state, save_checkpoint, seed_all, select_device,
                       set_rng_state)

DEFAULT_SPEECH_DIR = Path("data/pretrain-speech")
STATE_FILE = "pretraining_state.pt"
SUMMARY_FILE = PRETRAINING_RECORD
CURVES_FILE = "pretraining_curves.png"
FRAME_STRIDE = 320  # encoder frames are 20 ms: the conv front end's total stride
FBANK_PER_FRAME = 2  # 10 ms filterbank frames per encoder frame
# The rooms' generator is seeded by (seed, this), batches by (seed, step): no step count reaches it.
IMPULSE_RESPONSE_STREAM = 2**31 - 1


class CollapsedError(TrainingError):
    """The run finished but its objective collapsed (the encoder is written, for inspection)."""


@dataclasses.dataclass
class Source:
    """An utterance of pretraining audio: a file, or its part from start to end seconds."""

    path: Path
    start: float | None = None
    end: float | None = None
    # Set for an evaluation corpus' utterances (task-adaptive pretraining): whose audio it is.
    speaker: str | None = None


def collect_sources(manifests: list[Path], audio_dirs: list[Path], task_adaptive: bool,
                    leave_out_speakers: tuple[str, ...] = ()) -> tuple[list[Source], list[str]]:
    """The utterances of every manifest and every WAV/FLAC under each audio folder, and a line per
    source describing it. A manifest with labels is refused unless `task_adaptive`; the utterances
    of `leave_out_speakers` are left out of the labelled ones."""
    sources: list[Source] = []
    described = []
    left_out = set(map(str, leave_out_speakers))
    found = set()
    for manifest in manifests:
        frame = read_manifest(manifest, labelled=False)
        labelled = bool(vote_classes(frame.columns))
        if labelled and not task_adaptive:
            raise ConfigError(
                f"{manifest} has vote columns: it is an evaluation corpus, and pretraining on its audio is "
                "task-adaptive pretraining. Pass --task-adaptive to do so on purpose (and report it apart), or "
                "pretrain on unlabelled audio (`ser synth --unlabelled`).")
        speakers = frame["speaker"].astype(str)
        dropped = sorted(left_out & set(speakers)) if labelled else []
        found |= set(dropped)
        kept = ~speakers.isin(dropped)
        for row, speaker in zip(frame[kept].to_dict("records"), speakers[kept]):
            start, end = row.get("start"), row.get("end")
            sources.append(Source(audio_path(frame, row["path"]),
                                  None if start is None or math.isnan(start) else float(start),
                                  None if end is None or math.isnan(end) else float(end),
                                  speaker if labelled else None))
        kind = "labelled, task-adaptive" if labelled else "unlabelled"
        without = f", without speaker(s) {', '.join(dropped)}" if dropped else ""
        described.append(f"{manifest} ({int(kept.sum())} utterances, {kind}{without})")
    if left_out - found:
        raise ConfigError(f"--leave-out-speaker {', '.join(sorted(left_out - found))}: no such speaker in the labelled "
                          f"manifest(s) {', '.join(map(str, manifests)) or '(none given)'}")
    for folder in audio_dirs:
        if not folder.is_dir():
            raise ConfigError(f"--audio {folder}: not a folder")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
        if not files:
            raise ConfigError(f"--audio {folder}: no .wav or .flac file under it")
        sources += [Source(p) for p in files]
        described.append(f"{folder} ({len(files)} audio files)")
    return sources, described


def default_speech(config: Config, progress: bool) -> Path:
    """The generated pretraining speech's manifest, generated when missing."""
    from ..data.corpora.synth import synthesize_unlabelled

    synthesizer = config.pretrain.synthesizer
    folder = DEFAULT_SPEECH_DIR if synthesizer == "espeak" else DEFAULT_SPEECH_DIR.with_name(
        f"{DEFAULT_SPEECH_DIR.name}-{synthesizer}")
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        synthesize_unlabelled(folder, config.pretrain.hours, seed=config.seed, num_speakers=config.pretrain.speakers,
                              synthesizer=synthesizer, workers=config.synth.workers, progress=progress)
    return manifest


# ----------------------------------------------------------------------------- audio and targets


@dataclasses.dataclass
class Corpus:
    """Every utterance in memory (int16 samples) with its frame targets at the encoder's rate."""

    audio: list[torch.Tensor]
    frames: list[torch.Tensor]  # [encoder frames, 2 * mel bins]: log-mel pairs, mean-normalised
    clusters: list[torch.Tensor] | None = None  # [encoder frames] k-means ids (hubert)
    prosody: list[torch.Tensor] | None = None  # [encoder frames, 26] z-scored eGeMAPS + voicing
    prosody_scale: dict | None = None  # the mean and std of that z-scoring
    sources: list[Source] = dataclasses.field(default_factory=list)
    impulse_responses: list[np.ndarray] | None = None  # the rooms of the "reverb" distortion

    @property
    def seconds(self) -> float:
        return sum(len(a) for a in self.audio) / 16000


def load_corpus(sources: list[Source], sample_rate: int, features: FeatureConfig, progress: bool) -> Corpus:
    audio, frames = [], []
    for source in tqdm(sources, desc="loading audio", unit="utt", disable=not progress):
        samples = load_audio(source.path, sample_rate, source.start, source.end)
        if len(samples) < 2 * FRAME_STRIDE:
            raise SerError(f"{source.path}: {len(samples)} samples, too short for pretraining (< 40 ms)")
        audio.append(torch.round(samples.clamp(-1, 1) * 32767).to(torch.int16))
        frames.append(frame_targets(samples, features, sample_rate))
    return Corpus(audio, frames, sources=list(sources))


def add_prosody(corpus: Corpus, sample_rate: int, progress: bool) -> None:
    """The prosody workers' targets (`data.prosody`) of every utterance, z-scored over the corpus."""
    targets = [prosody_frames(samples.float() / 32767, sample_rate, FRAME_STRIDE, len(frames))
               for samples, frames in tqdm(list(zip(corpus.audio, corpus.frames)), desc="eGeMAPS descriptors",
                                           unit="utt", disable=not progress)]
    corpus.prosody, corpus.prosody_scale = standardize(targets)


def frame_targets(samples: torch.Tensor, features: FeatureConfig, sample_rate: int) -> torch.Tensor:
    """Each encoder frame's target: the two 10 ms log-mel frames starting at its start, mean-normalised
    over the utterance (the encoder sees a normalised waveform, so level is not a target)."""
    logmel = fbank(samples, features, sample_rate)
    logmel = logmel - logmel.mean(0)
    num_encoder_frames = 1 + (len(samples) - 400) // FRAME_STRIDE
    index = torch.arange(num_encoder_frames * FBANK_PER_FRAME).clamp(max=len(logmel) - 1)
    return logmel[index].reshape(num_encoder_frames, -1).to(torch.float16)


def fit_clusters(corpus: Corpus, num_clusters: int, max_frames: int, seed: int) -> np.ndarray:
    """MiniBatchKMeans on a random subset of frames; assigns every frame of the corpus."""
    from sklearn.cluster import MiniBatchKMeans

    everything = torch.cat(corpus.frames).float().numpy()
    rng = np.random.default_rng(seed)
    subset = everything[rng.choice(len(everything), size=min(max_frames, len(everything)), replace=False)]
    kmeans = MiniBatchKMeans(n_clusters=num_clusters, random_state=seed, batch_size=4096, n_init=3).fit(subset)
    corpus.clusters = [torch.from_numpy(kmeans.predict(f.float().numpy()).astype(np.int64)) for f in corpus.frames]
    return kmeans.cluster_centers_


def draw_batch(corpus: Corpus, batch_size: int, crop_s: float, seed: int, step: int,
               distortions: tuple[str, ...] = (), distortion_prob: float = 0.0) -> dict:
    """A batch of random crops, from a generator seeded by (seed, step). Crops start on an encoder
    frame, so frame t of a crop is frame (start / 320 + t) of its utterance's targets. With
    `distortions`, each crop's waveform is distorted (`data.distortions`); its targets stay clean."""
    rng = np.random.default_rng([seed, step])
    crop = int(crop_s * 16000) // FRAME_STRIDE * FRAME_STRIDE
    lengths = np.array([len(a) for a in corpus.audio], dtype=float)
    chosen = rng.choice(len(lengths), size=batch_size, p=np.maximum(lengths, crop) / np.maximum(lengths, crop).sum())
    rows = []
    for i in chosen:
        n = len(corpus.audio[i])
        first_frame = int(rng.integers(0, max(0, n - crop) // FRAME_STRIDE + 1))
        start = first_frame * FRAME_STRIDE
        rows.append((i, start, min(crop, n - start), first_frame))
    width = max(length for _, _, length, _ in rows)
    num_frames = 1 + (width - 400) // FRAME_STRIDE
    waveform = torch.zeros(batch_size, width)
    sample_mask = torch.zeros(batch_size, width, dtype=torch.bool)
    frames = torch.zeros(batch_size, num_frames, corpus.frames[0].shape[1])
    clusters = torch.zeros(batch_size, num_frames, dtype=torch.long)
    prosody = torch.zeros(batch_size, num_frames, corpus.prosody[0].shape[1] if corpus.prosody else 0)
    for row, (i, start, length, first_frame) in enumerate(rows):
        speech = corpus.audio[i][start:start + length].float() / 32767
        if distortions:
            speech = torch.from_numpy(distort(speech.numpy().astype(np.float64), distortions, distortion_prob,
                                              corpus.impulse_responses, rng)).float()
        waveform[row, :length] = speech
        sample_mask[row, :length] = True
        target = corpus.frames[i][first_frame:first_frame + num_frames]
        frames[row, : len(target)] = target.float()
        if corpus.clusters is not None:
            ids = corpus.clusters[i][first_frame:first_frame + num_frames]
            clusters[row, : len(ids)] = ids
        if corpus.prosody is not None:
            values = corpus.prosody[i][first_frame:first_frame + num_frames]
            prosody[row, : len(values)] = values
    return {"waveform": waveform, "sample_mask": sample_mask, "frames": frames, "clusters": clusters,
            "prosody": prosody}


# ----------------------------------------------------------------------------- the run


def pretrain(config: Config, sources: list[Source], described: list[str], out_dir: Path, *, resume: bool = False,
             task_adaptive: bool = False, progress: bool = True) -> dict:
    """Pretrain `config.pretrain.encoder` with `config.pretrain.objective`; returns the summary
    written to `pretraining.json`. Raises `CollapsedError` (after writing everything) when the
    run's last window looks collapsed."""
    settings = config.pretrain
    out_dir = Path(out_dir)
    state_path = out_dir / STATE_FILE
    if (out_dir / SUMMARY_FILE).exists() and not state_path.exists():
        if resume:
            raise ConfigError(f"{out_dir} holds a finished pretraining run; nothing to resume")
        raise ConfigError(f"{out_dir} holds a finished pretraining run; choose another --out or remove it")
    if state_path.exists() and not resume:
        raise ConfigError(f"{out_dir} holds an interrupted pretraining run; pass --resume to continue it")
    if not sources:
        raise ConfigError("no pretraining audio: give --manifest or --audio")
    out_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(config.runtime.device)
    seed_all(config.seed)
    corpus = load_corpus(sources, config.data.sample_rate, config.features, progress)
    if settings.objective == "hubert":
        fit_clusters(corpus, settings.num_clusters, settings.kmeans_frames, config.seed)
    if settings.prosody_weight > 0:
        add_prosody(corpus, config.data.sample_rate, progress)
    if "reverb" in settings.distortions:
        corpus.impulse_responses = room_impulse_responses(np.random.default_rng([config.seed, IMPULSE_RESPONSE_STREAM]),
                                                          sample_rate=config.data.sample_rate)

    start_from = build_encoder(ModelConfig(encoder=settings.encoder, mask_time_prob=settings.mask_prob))
    objective = build_objective(settings.objective, start_from.config, settings, corpus.frames[0].shape[1],
                                prosody_dim=corpus.prosody[0].shape[1] if corpus.prosody else 0)
    if settings.encoder not in NAMED_ENCODERS:  # continue from a pretrained folder
        objective.encoder.load_state_dict(start_from.state_dict())
    objective = objective.to(device)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    warmup = max(1, round(settings.warmup_share * settings.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (settings.steps - s) / max(1, settings.steps - warmup))))

    step, history, elapsed, flops_per_step = 0, [], 0.0, None
    if state_path.exists():
        state = load_checkpoint(state_path)
        if state["settings"] != dataclasses.asdict(settings) or state["seed"] != config.seed:
            raise ConfigError(f"{state_path}: the interrupted run had other pretrain settings or seed; "
                              "resume it with the same ones, or start a new --out")
        objective.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"])
        step, history, elapsed, flops_per_step = state["step"], state["history"], state["elapsed"], state["flops"]

    objective.train()
    window: list[dict] = []
    started = time.perf_counter() - elapsed
    with tqdm(total=settings.steps, initial=step, desc=f"pretrain {settings.objective}", unit="step",
              disable=not progress) as bar:
        while step < settings.steps:
            if hasattr(objective, "set_progress"):
                objective.set_progress(step / settings.steps)
            batch = {k: v.to(device) for k, v in draw_batch(corpus, settings.batch_size, settings.crop_s,
                                                             config.seed, step, settings.distortions,
                                                             settings.distortion_prob).items()}
            # The first step's forward and backward FLOPs (matmuls and convolutions) give the throughput.
            counter = FlopCounterMode(display=False) if flops_per_step is None else contextlib.nullcontext()
            with counter:
                loss, stats = objective(batch)
                if not torch.isfinite(loss):
                    raise TrainingError(f"pretraining loss is {float(loss)} at step {step}; lower pretrain.lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if flops_per_step is None:
                flops_per_step = counter.get_total_flops()
            grad_norm = torch.nn.utils.clip_grad_norm_(objective.parameters(), settings.grad_clip)
            optimizer.step()
            schedule.step()
            step += 1
            window.append({"loss": loss.item(), "grad_norm": grad_norm.item(), **stats})
            if step % settings.log_every == 0 or step == settings.steps:
                row = {"step": step, "lr": schedule.get_last_lr()[0], "seconds": time.perf_counter() - started,
                       **{k: float(np.mean([w[k] for w in window])) for k in window[0]}}
                history.append(row)
                window = []
                bar.set_postfix({k: f"{row[k]:.3g}" for k in _progress_keys(settings)})
            if step % settings.checkpoint_every == 0 and step < settings.steps:
                save_checkpoint(state_path, {"model": objective.state_dict(), "optimizer": optimizer.state_dict(),
                                             "schedule": schedule.state_dict(), "rng": rng_state(), "step": step,
                                             "history": history, "elapsed": time.perf_counter() - started,
                                             "settings": dataclasses.asdict(settings), "seed": config.seed,
                                             "flops": flops_per_step})
            bar.update()
    wall = time.perf_counter() - started
    throughput = _throughput(flops_per_step, settings.steps, wall, device)
    return _finish(config, objective, history, wall, throughput, corpus, described, out_dir, task_adaptive)


def _progress_keys(settings: PretrainConfig) -> tuple[str, ...]:
    keys = {"hubert": ("loss", "accuracy", "prediction_perplexity"), "tera": ("loss", "mean_frame_l1"),
            "wav2vec2": ("contrastive", "codevector_perplexity")}[settings.objective]
    return keys + ("prosody_mse",) if settings.prosody_weight > 0 else keys


def _throughput(flops_per_step: int, steps: int, wall: float, device: torch.device) -> dict:
    """Achieved FLOP/s of the run against this machine's dense fp32 matmul peak (`ser bench`'s)."""
    achieved = flops_per_step * steps / wall / 1e9
    peak = matmul_peak_gflops("fp32", device)
    return {"flops_per_step": flops_per_step, "achieved_gflops": achieved, "matmul_peak_gflops_fp32": peak,
            "percent_of_peak": 100 * achieved / peak}


def _finish(config, objective, history, wall, throughput, corpus, described, out_dir, task_adaptive) -> dict:
    from ..analysis.plots import plot_pretraining_curves, save_figure

    settings = config.pretrain
    encoder = objective.encoder
    encoder.config.mask_time_prob = config.model.mask_time_prob  # the fine-tuning default, not pretraining's
    encoder.save_pretrained(out_dir, safe_serialization=True)
    reasons = collapse_reasons(history, settings)
    audio_seconds = settings.steps * settings.batch_size * settings.crop_s
    summary = {
        "objective": settings.objective, "encoder": settings.encoder, "seed": config.seed,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "settings": dataclasses.asdict(settings), "sources": described, "task_adaptive": task_adaptive,
        # Whose audio of an evaluation corpus it saw: a fold of one of them is transductive (`train.task_adaptive`).
        "task_adaptive_speakers": sorted({s.speaker for s in corpus.sources if s.speaker is not None}),
        "corpus_hours": corpus.seconds / 3600, "utterances": len(corpus.audio),
        "wall_seconds": wall, "audio_seconds_per_second": audio_seconds / wall if wall else math.nan,
        "torch_threads": torch.get_num_threads(), **throughput,
        "collapsed": bool(reasons), "collapse_reasons": reasons, "prosody_scale": corpus.prosody_scale,
        "final": history[-1] if history else {}, "history": history,
    }
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    save_figure(plot_pretraining_curves(history, settings.objective), out_dir / CURVES_FILE)
    (out_dir / STATE_FILE).unlink(missing_ok=True)
    if reasons:
        raise CollapsedError(f"pretraining collapsed ({'; '.join(reasons)}); the encoder in {out_dir} is written "
                             "for inspection only")
    return summary

