"""Inference speed of a trained model: real-time factor (compute seconds per second of audio).

    python benchmarks/bench_inference.py MODEL.pt FILE_OR_FOLDER [--limit N] [--device auto]

Each file goes through the same path as `ser predict` (read, resample, segment, fbank, model);
the model is loaded once. Prints the files, audio seconds, wall seconds and the real-time factor.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import soundfile
import torch

from ser_lib.model import load_model
from ser_lib.predict import predict_waveform_file
from ser_lib.runtime import select_device, synchronize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("audio", type=Path, help="a WAV file or a folder of them")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    files = sorted(args.audio.glob("*.wav"))[: args.limit] if args.audio.is_dir() else [args.audio]
    model, config, classes = load_model(args.checkpoint)
    device = select_device(args.device)
    model.to(device)
    predict_waveform_file(files[0], model, config, classes, device)  # warm-up
    audio_seconds = sum(soundfile.info(str(f)).duration for f in files)
    synchronize(device)
    started = time.perf_counter()
    for path in files:
        predict_waveform_file(path, model, config, classes, device)
    synchronize(device)
    wall = time.perf_counter() - started
    print(f"device {device}, {torch.get_num_threads()} threads, encoder {config.model.encoder!r}")
    print(f"{len(files)} files, {audio_seconds:.1f} s of audio, {wall:.2f} s wall: "
          f"real-time factor {wall / audio_seconds:.4f} ({audio_seconds / wall:.0f}x faster than real time)")


if __name__ == "__main__":
    main()
