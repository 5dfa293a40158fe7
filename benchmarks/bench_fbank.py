"""Speed of ser_lib.features.fbank on 7 s utterances (the longest segment, §V-C).

Prints milliseconds per call and per utterance, for one utterance and a batch of 16, on
CPU and, when available, CUDA; kaldi-native-fbank (one utterance, CPU) for scale.

    python benchmarks/bench_fbank.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ser_lib.config import DataConfig, FeatureConfig
from ser_lib.data.features import fbank
from ser_lib.runtime import synchronize


def time_ms(fn, repeats: int, device: torch.device) -> float:
    """Median wall time of fn() in milliseconds, after warm-up (caches, CUDA kernels)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    data, config = DataConfig(), FeatureConfig()
    samples = round(data.max_segment_s * data.sample_rate)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"utterance = {data.max_segment_s:g} s = {samples} samples at {data.sample_rate} Hz")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for batch in (1, 16):
            waveform = (0.1 * torch.randn(batch, samples)).to(device)
            ms = time_ms(lambda: fbank(waveform, config, data.sample_rate), args.repeats, device)
            print(f"{name:>24} batch {batch:>2}: {ms:8.3f} ms/call {ms / batch:8.3f} ms/utterance "
                  f"({data.max_segment_s * 1e3 * batch / ms:8.0f}x real time)")

    try:
        import kaldi_native_fbank as knf
    except ImportError:
        return
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.frame_length_ms = config.frame_length_ms
    opts.frame_opts.window_type = "hamming"
    opts.mel_opts.num_bins = config.num_mel_bins
    samples_list = (0.1 * torch.randn(samples)).tolist()

    def reference():
        computer = knf.OnlineFbank(opts)
        computer.accept_waveform(data.sample_rate, samples_list)
        computer.input_finished()
        return [computer.get_frame(i) for i in range(computer.num_frames_ready)]

    ms = time_ms(reference, args.repeats, torch.device("cpu"))
    print(f"{'kaldi-native-fbank (cpu)':>24} batch  1: {ms:8.3f} ms/call {ms:8.3f} ms/utterance "
          f"({data.max_segment_s * 1e3 / ms:8.0f}x real time)")


if __name__ == "__main__":
    main()
