"""`ser bench`: FLOP counting, eager attention, the Table VI rows, the CLI and the base encoder."""

import json
from functools import partial

import pytest
import torch
from torch import nn
from transformers import Wav2Vec2Model

from ser_lib.benchmarking import inference, memory, peaks, report, table_vi
from ser_lib.benchmarking.flops import count_flops
from ser_lib.analysis.paper_numbers import paper_value
from ser_lib.cli import main
from ser_lib.config import ModelConfig, load_config
from ser_lib.errors import ConfigError
from ser_lib.model import count_parameters
from ser_lib.model.encoder import build_encoder
from ser_lib.model.temporal import frame_lengths

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_rows():
    """One real benchmark of the tiny model at 1 s (its memory is measured in a fresh process)."""
    measured = peaks.measure_peaks(CPU, ("fp32",), size=256, seconds=0.05)
    return inference.run_benchmark(load_config("demo"), "tiny", [1.0], 3, CPU, warmup=1, peaks=measured), measured


def test_linear_flops_are_twice_its_macs():
    layer = nn.Linear(8, 5)
    macs, flops = count_flops(layer, torch.randn(3, 8))
    assert flops == 2 * 8 * 5 * 3
    assert macs == 8 * 5 * 3


def test_eager_attention_counts_the_attention_matmuls():
    config = ModelConfig(encoder="tiny")
    waveform = torch.randn(1, 16000)
    torch.manual_seed(0)
    default = build_encoder(config).eval()
    torch.manual_seed(0)
    eager = build_encoder(config, attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager" != default.config._attn_implementation
    frames = int(frame_lengths(eager.config, 16000))
    assert frames == 49  # 1 s at 50 frames/s
    hidden, layers = eager.config.hidden_size, eager.config.num_hidden_layers
    # Q·Kᵀ and weights·V: 2 frames² hidden MACs per layer, 2 FLOPs each.
    attention_flops = layers * 2 * 2 * frames * frames * hidden
    assert count_flops(eager, waveform)[1] == count_flops(default, waveform)[1] + attention_flops


def test_unknown_attention_implementation_is_a_config_error():
    with pytest.raises(ConfigError, match="'bogus'"):
        build_encoder(ModelConfig(encoder="tiny"), attn_implementation="bogus")


def test_run_benchmark_rows(tiny_rows):
    rows, _ = tiny_rows
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == set(inference.ROW_KEYS)
    assert (row["encoder"], row["length_s"], row["device"], row["dtype"]) == ("tiny", 1.0, "cpu", "fp32")
    for key in ("macs", "flops", "latency_ms", "latency_std_ms", "rtf", "peak_mem_bytes", "gflops_per_s",
                "percent_of_peak"):
        assert row[key] > 0, key
    assert row["flops"] == 2 * row["macs"]
    assert row["rtf"] == pytest.approx(row["latency_ms"] / 1000 / 1.0)
    assert row["gflops_per_s"] == pytest.approx(row["flops"] / (row["latency_ms"] / 1000) / 1e9)


def test_markdown_puts_the_paper_rows_beside_ours(tiny_rows):
    table = report.format_markdown(*tiny_rows)
    assert "MACs (G)" in table and "FLOPs (G)" in table
    lines = table.splitlines()
    ours = next(i for i, line in enumerate(lines) if line.startswith("| ours, encoder tiny"))
    assert "4.44 ± 0.05" in lines[ours + 1] and "6.95" in lines[ours + 1]
    paper_lengths = [line.split(" | ")[3] for line in lines if line.startswith("| paper Table VI")]
    assert paper_lengths == ["1.00", "1.20", "1.60", "1.94"]  # every paper length, measured here or not
    assert "Matmul peak" in table


def test_every_paper_length_shows_table_vi_from_the_paper_numbers():
    table = report.format_markdown([], {})
    (row,) = [line for line in table.splitlines() if line.startswith("| paper Table VI | RTX 3090 | — | 1.60 |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    value = partial(paper_value, "VI", "1.60 s")
    assert cells[4] == f"{value('FLOPs'):.2f}*"  # in the MACs column (the footnote says why)
    assert cells[6] == f"{value('Latency'):.2f} ± {value('Latency ±'):.2f}"
    assert cells[7] == f"{value('RTF'):.3f}" and cells[8] == f"{value('Peak Mem'):.2f}"
    assert table_vi.PAPER_LENGTHS == (1.0, 1.2, 1.6, 1.94)
    assert f"{paper_value('VI', '1.94 s', 'FLOPs'):.2f} G" in table  # the footnote's numbers are the paper's


def test_cli_bench_json_with_training(capsys, monkeypatch):
    # The fresh-process memory measurement is exercised by `tiny_rows`; here it would only add
    # the 5 s a new process takes to import torch and transformers.
    monkeypatch.setattr(memory, "_fresh_process_peak_rss", lambda config, length_s, dtype: 12345)
    status = main(["bench", "--profile", "demo", "--encoder", "tiny", "--lengths", "1", "--runs", "2", "--json",
                   "--train", "--train-steps", "2", "--train-length", "1.5", "--set", "train.batch_size=2"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert [(row["length_s"], row["peak_mem_bytes"]) for row in report["rows"]] == [(1.0, 12345)]
    assert report["peaks"]["fp32"]["gflops_per_s"] > 0
    for stage in ("stage1", "stage2"):
        assert report["train"][stage]["segments_per_s"] > 0
        assert report["train"][stage]["flops_per_step"] > 0
    # Stage 2 runs the spatial branch and fusion on top of stage 1's temporal branch.
    assert report["train"]["stage2"]["flops_per_step"] > report["train"]["stage1"]["flops_per_step"]


@pytest.mark.parametrize("argv, value", [
    (["--lengths", "1,-0.5"], "-0.5"),
    (["--lengths", "1,abc"], "abc"),
    (["--runs", "0"], "got 0"),
    (["--dtypes", "fp8"], "fp8"),
    (["--encoder", " "], "' '"),
    (["--train", "--train-steps", "0"], "got 0"),
])
def test_cli_bench_rejects_bad_values(capsys, argv, value):
    assert main(["bench", "--encoder", "tiny", *argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ser: error:") and value in error


def test_unknown_encoder_is_a_config_error():
    with pytest.raises(ConfigError, match="no/such/folder"):
        inference.run_benchmark(load_config("demo"), "./no/such/folder", [1.0], 1, CPU, peaks={})


def test_base_encoder_is_wav2vec2_base():
    encoder = build_encoder(ModelConfig(encoder="base", mask_time_prob=0.07))
    assert isinstance(encoder, Wav2Vec2Model)
    config = encoder.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.intermediate_size, config.feat_extract_norm) == (3072, "group")
    assert config.mask_time_prob == 0.07
    assert count_parameters(encoder) == pytest.approx(94.4e6, rel=0.001)


def test_cli_bench_defaults_to_the_benchmark_lengths(capsys, monkeypatch):
    measured = {}
    monkeypatch.setattr(peaks, "measure_peaks", lambda device: {})
    monkeypatch.setattr(inference, "run_benchmark", lambda config, encoder, lengths, *args, **kwargs:
                        measured.setdefault("lengths", tuple(lengths)) and [])
    assert main(["bench", "--encoder", "tiny"]) == 0
    assert measured["lengths"] == inference.DEFAULT_LENGTHS == (1.0, 1.2, 1.6, 1.94, 3.0, 7.0)
    assert "| paper Table VI" in capsys.readouterr().out
