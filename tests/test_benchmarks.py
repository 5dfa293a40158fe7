"""Smoke runs of the scripts in benchmarks/ on tiny inputs: each runs as a user would run it
(a subprocess, from another folder) and prints numbers that agree with each other."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import soundfile

from ser_lib.config import load_config
from ser_lib.model import SERModel, save_model

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = r"([0-9.]+)"


def run_script(name: str, *args, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_fbank_times_one_utterance_and_a_batch(tmp_path):
    out = run_script("bench_fbank.py", "--repeats", "1", cwd=tmp_path)
    rows = re.findall(rf"cpu batch +(\d+): +{NUMBER} ms/call +{NUMBER} ms/utterance \( *{NUMBER}x real time\)", out)
    assert [int(row[0]) for row in rows[:2]] == [1, 16]
    for batch, per_call, per_utterance, speed in ((int(b), *map(float, rest)) for b, *rest in rows[:2]):
        assert per_call > 0 and per_utterance == pytest.approx(per_call / batch, abs=2e-3)
        assert speed == pytest.approx(7000 * batch / per_call, rel=0.01, abs=1)  # 7 s utterances


def test_bench_inference_reports_the_real_time_factor(tmp_path, tiny_corpus, quick):
    config = load_config("demo", overrides=quick)
    classes = config.data.classes
    checkpoint = tmp_path / "model.pt"
    save_model(checkpoint, SERModel(config.model, len(classes)), config, classes)
    wavs = tiny_corpus.parent / "wav"
    out = run_script("bench_inference.py", checkpoint, wavs, "--limit", 3, "--device", "cpu", cwd=tmp_path)
    found = re.search(rf"(\d+) files, {NUMBER} s of audio, {NUMBER} s wall: real-time factor {NUMBER}", out)
    files, (audio, wall, rtf) = int(found[1]), map(float, found.groups()[1:])
    expected_audio = sum(soundfile.info(str(f)).duration for f in sorted(wavs.glob("*.wav"))[:3])
    assert files == 3 and audio == pytest.approx(expected_audio, abs=0.05)
    # wall / audio, within what the printed digits (2 and 1 decimals) leave open
    assert (wall - 0.005) / (audio + 0.05) - 1e-4 <= rtf <= (wall + 0.005) / (audio - 0.05) + 1e-4
    assert f"encoder {config.model.encoder!r}" in out  # the checkpoint's model, not a default one


def test_profile_fold_accounts_for_every_second_of_a_fold_with_caches_of_its_own(tmp_path, tiny_corpus, quick):
    # Four clear utterances (one per class) and one ambiguous per speaker: the least a fold trains on.
    rows = pd.read_csv(tiny_corpus)
    manifest = tmp_path / "manifest.csv"
    rows[rows["utt_id"].str[-1].isin(list("01236"))].to_csv(manifest, index=False)
    (tmp_path / "wav").symlink_to(tiny_corpus.parent / "wav")
    configured_cache = tmp_path / "configured-cache"
    overrides = {**quick, "train.stage1_max_epochs": 1, "train.max_epochs": 1, "cache_dir": configured_cache}
    out = run_script("profile_fold.py", "--corpus", manifest, "--fold", "S1F", "--backward-repeats", 1,
                     *[arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")], cwd=tmp_path)
    # A configured cache would let a second run reuse stage 1 and the features, leaving them unmeasured.
    assert "fold S1F" in out and "stage 1 trained" in out and not configured_cache.exists()
    table = re.findall(r"^\| ([^|]+?) \| (-?[0-9.]+) \| ([^|]+?) \|$", out, re.MULTILINE)
    phases = {name: (float(seconds), share) for name, seconds, share in table}
    for phase in ("feature extraction (cold cache, once per corpus)", "wav2vec2 front end, once per fold (frozen)",
                  "forward: wav2vec2 transformer", "forward: spatial CNN", "loss (eqs. 6-11)",
                  "gradient clipping + Adam step", "evaluation (validation every epoch)"):
        assert phases[phase][0] > 0, phase
    assert any(name.startswith("backward: ") and seconds > 0 for name, (seconds, _) in phases.items())
    shares = [float(share.rstrip("%")) for _, share in phases.values() if share.endswith("%")]
    assert sum(shares) == pytest.approx(100, abs=0.5)  # every second of the fold is in one row
