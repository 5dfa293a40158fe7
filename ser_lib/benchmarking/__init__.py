"""Benchmarks: inference cost like the paper's Table VI and training throughput (`ser bench`).

The top layer of `ser_lib`: it measures the model, the method and the training step, so it may
import any of them, and nothing below imports it. The machine's own yardstick, its dense matmul
peak, lives in `runtime` (training reports against it too).

- `workload`: the measured model (eager attention) and its random inputs and training samples.
- `flops`: MACs and FLOPs of one forward, as torch's FLOP counter counts them.
- `memory`: peak memory of one forward (CUDA allocator, or a fresh CPU process).
- `peaks`: the matmul peak per dtype and "% of peak".
- `inference`: the Table VI rows (FLOPs, latency, RTF, memory) per input length and dtype.
- `training`: segments per second of a stage-1 and a stage-2 training step.
- `table_vi`: the paper's Table VI, read from `analysis/paper_numbers.csv`.
- `report`: our rows beside the paper's as Markdown.
"""
