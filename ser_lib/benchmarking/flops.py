"""MACs and FLOPs of one forward, as `torch.utils.flop_counter.FlopCounterMode` counts them.

The counter counts matmuls and convolutions only, at 2 FLOPs per multiply-accumulate;
elementwise ops, normalisation and softmax are left out. Its total is reported as FLOPs and
half of it as MACs (the paper's "FLOPs" are most likely MACs: `table_vi`).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: torch.nn.Module, batch) -> tuple[int, int]:
    """(MACs, FLOPs) of one forward of `model` on `batch`.

    Counted under no_grad, not inference_mode: under inference_mode the counter breaks
    wav2vec2's weight-normed positional convolution.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(batch)
    flops = int(counter.get_total_flops())
    return flops // 2, flops
