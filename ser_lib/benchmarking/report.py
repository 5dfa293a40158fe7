"""Markdown tables: our Table VI rows beside the paper's, the matmul peaks, training throughput."""

from __future__ import annotations

from typing import Sequence

from .table_vi import PAPER_LENGTHS, PAPER_SETUP, PAPER_TABLE_VI


def _number(value, digits: int, scale: float = 1.0) -> str:
    return "—" if value is None else f"{value / scale:.{digits}f}"


def format_markdown(rows: Sequence[dict], peaks: dict) -> str:
    """Our rows and the paper's Table VI rows (at their lengths, beside ours) as one Markdown
    table, with the method notes and the measured matmul peaks."""
    header = ("| source | device | dtype | length (s) | MACs (G) | FLOPs (G) | latency (ms) | RTF "
              "| peak memory (GB) | GFLOP/s | % of peak |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for length in sorted({row["length_s"] for row in rows} | set(PAPER_LENGTHS)):
        for row in (r for r in rows if r["length_s"] == length):
            lines.append(
                f"| ours, encoder {row['encoder']} | {row['device']} | {row['dtype']} | {length:.2f} "
                f"| {_number(row['macs'], 2, 1e9)} | {_number(row['flops'], 2, 1e9)} "
                f"| {row['latency_ms']:.2f} ± {row['latency_std_ms']:.2f} | {row['rtf']:.4f} "
                f"| {_number(row['peak_mem_bytes'], 3, 1e9)} | {_number(row['gflops_per_s'], 1)} "
                f"| {_number(row['percent_of_peak'], 1)} |")
        if length in PAPER_TABLE_VI:  # as the paper prints them: its RTF has 3 decimals
            paper = PAPER_TABLE_VI[length]
            lines.append(f"| paper Table VI | RTX 3090 | — | {length:.2f} | {paper['FLOPs']:.2f}* | — "
                         f"| {paper['Latency']:.2f} ± {paper['Latency ±']:.2f} | {paper['RTF']:.3f} "
                         f"| {paper['Peak Mem']:.2f} | — | — |")
    notes = [
        "",
        "FlopCounterMode counts matmuls and convolutions (eager attention included): FLOPs = 2 × MACs.",
        _macs_footnote(),
        f"Paper setup: {PAPER_SETUP}; its numbers as Table VI prints them.",
        "Latency: batch 1, mean ± std of the timed forwards after warm-up; the filterbank is computed "
        "before timing. RTF = latency / length.",
        "Peak memory: CUDA allocator peak of one forward; on CPU the peak RSS growth of a fresh process "
        "that builds the model and runs one forward (weights, inputs, activations, library code it pages in).",
        "% of peak: counted FLOPs / latency over the matmul peak below, same dtype.",
        "",
        format_peaks(peaks),
    ]
    return "\n".join(lines + notes)


def _macs_footnote() -> str:
    """Why the paper's "FLOPs" sit in the MACs column, from its numbers at the two lengths measured
    here with wav2vec2-base (figures/table6-bench_report.md)."""
    at_1, at_194 = PAPER_TABLE_VI[1.0]["FLOPs"], PAPER_TABLE_VI[1.94]["FLOPs"]
    return (f"\\* The paper's \"FLOPs\" are most likely MACs and are shown as such: at 1 s it reports {at_1:.2f} G, "
            f"where wav2vec2-base alone has 6.91 GMACs and the full model with it 6.93; at 1.94 s it reports "
            f"{at_194:.2f} G, where the full model has 13.61 GMACs (27.21 GFLOPs).")


def format_peaks(peaks: dict) -> str:
    """One line: the measured dense matmul throughput per dtype, or why it is missing."""
    parts = []
    for dtype, peak in peaks.items():
        if peak["gflops_per_s"] is None:
            parts.append(f"{dtype} unsupported ({peak['error']})")
        else:
            parts.append(f"{dtype} {peak['gflops_per_s']:.1f} GFLOP/s")
    size = next(iter(peaks.values()))["matrix_size"] if peaks else 0
    return f"Matmul peak ({size}×{size} @ {size}×{size}, this machine): " + ", ".join(parts)


def format_training_markdown(train: dict) -> str:
    """The training throughput of `training.measure_training_throughput` as a Markdown table."""
    lines = ["| stage | device | dtype | batch | length (s) | segments/s | step (ms) | GFLOP per step "
             "| GFLOP/s | % of peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, label in (("stage1", "1: temporal branch, clear rows"), ("stage2", "2: full model, joint loss")):
        stage = train[name]
        if stage is None:
            continue
        lines.append(f"| {label} | {train['device']} | {train['dtype']} | {train['batch_size']} "
                     f"| {train['length_s']:.2f} | {stage['segments_per_s']:.1f} | {stage['step_ms']:.1f} "
                     f"| {stage['flops_per_step'] / 1e9:.1f} | {stage['gflops_per_s']:.1f} "
                     f"| {_number(stage['percent_of_peak'], 1)} |")
    lines += ["", f"{train['steps']} timed steps after {train['warmup']} warm-up step(s); FLOPs counted on a "
                  "replay of the timed steps (forward and backward, eager attention)."]
    return "\n".join(lines)
