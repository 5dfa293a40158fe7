"""Task-adaptive encoders: pretraining that leaves speakers out, one encoder per fold, and every
fold, probe and report saying what audio its encoder heard (`train.task_adaptive`)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from ser_lib.analysis import runs
from ser_lib.analysis.probe import linear_probe
from ser_lib.analysis.probe_curve import curve_markdown, probe_curve
from ser_lib.cli import main
from ser_lib.config import PRETRAINED_ENCODER, ModelConfig, load_config
from ser_lib.data.corpora.synth import unlabelled
from ser_lib.errors import ConfigError
from ser_lib.experiments.report_markdown import format_report
from ser_lib.experiments.report_stats import RowSummary, Score, SweepSummary
from ser_lib.model.encoder import PRETRAINING_RECORD, absolute_encoder, build_encoder, encoder_audio, encoder_of_fold, most_marked
from ser_lib.model.ser_model import load_model
from ser_lib.runtime import seed_all
from ser_lib.train import pretrain as pretraining
from ser_lib.train.loso import run_loso

SPEAKERS = ("S1F", "S1M", "S2F", "S2M")  # the tiny corpus'


def fake_encoder(folder: Path, speakers, seed: int = 0, task_adaptive: bool = True) -> Path:
    """A random tiny encoder with the record `ser pretrain` would write after hearing `speakers`
    (None: a record from before the speakers were kept)."""
    seed_all(seed)
    build_encoder(ModelConfig(encoder="tiny")).save_pretrained(folder)
    record = {"task_adaptive": task_adaptive, "objective": "tera", "settings": {"steps": 300}, "seed": 0,
              "wall_seconds": 60.0, "torch_threads": 1, "corpus_hours": 0.25}
    if speakers is not None:
        record["task_adaptive_speakers"] = sorted(speakers)
    (folder / PRETRAINING_RECORD).write_text(json.dumps(record))
    return folder


def per_fold_encoders(root: Path) -> str:
    """One fake encoder per speaker of the tiny corpus, each without that speaker; returns `root/{fold}`."""
    for i, speaker in enumerate(SPEAKERS):
        fake_encoder(root / speaker, set(SPEAKERS) - {speaker}, seed=i)
    return str(root / "{fold}")


def test_pretraining_sources_leave_the_named_speakers_out(tiny_corpus):
    sources, described = pretraining.collect_sources([tiny_corpus], [], task_adaptive=True, leave_out_speakers=("S1F",))
    assert len(sources) == 24 and {s.speaker for s in sources} == {"S1M", "S2F", "S2M"}
    assert "24 utterances" in described[0] and "without speaker(s) S1F" in described[0]
    with pytest.raises(ConfigError, match="--leave-out-speaker S9X: no such speaker"):
        pretraining.collect_sources([tiny_corpus], [], task_adaptive=True, leave_out_speakers=("S9X",))


def test_encoder_audio_reads_whose_audio_the_encoder_heard(tmp_path):
    fold_encoder = fake_encoder(tmp_path / "without-S1F", {"S1M", "S2F", "S2M"})
    assert encoder_audio(str(fold_encoder), ["S1F"]) == "task-adaptive"
    assert encoder_audio(str(fold_encoder), ["S1M"]) == "transductive"
    assert encoder_audio(str(fake_encoder(tmp_path / "unrecorded", None)), ["S1F"]) == "transductive"
    assert encoder_audio(str(fake_encoder(tmp_path / "generated", None, task_adaptive=False)), ["S1F"]) == "corpus-free"
    assert encoder_audio(PRETRAINED_ENCODER, ["S1F"]) == encoder_audio("tiny", ["S1F"]) == "corpus-free"
    assert most_marked([None, float("nan"), "task-adaptive", "corpus-free"]) == "task-adaptive"
    assert most_marked(["transductive", "task-adaptive"]) == "transductive" and most_marked([]) == "corpus-free"
    assert encoder_of_fold(str(tmp_path / "{fold}"), "without-S1F") == str(fold_encoder)
    with pytest.raises(ConfigError, match="fold S9X has no encoder folder .*--per-fold"):
        encoder_of_fold(str(tmp_path / "{fold}"), "S9X")
    # a sweep's workers run elsewhere: local folders and templates become absolute, names stay
    assert absolute_encoder("runs/tapt/{fold}") == str(Path.cwd() / "runs/tapt/{fold}")
    assert [absolute_encoder(n) for n in ("tiny", PRETRAINED_ENCODER)] == ["tiny", PRETRAINED_ENCODER]


def labelled_speech(folder: Path) -> Path:
    """About 70 s of generated speech from 6 speakers, given votes: an evaluation corpus whose audio is
    speech (on the tiny corpus' tones, TERA does no better than the mean frame, and the collapse check
    fails the run)."""
    frame = pd.read_csv(unlabelled.synthesize_unlabelled(folder, hours=0.02, num_speakers=6, progress=False))
    classes = ("anger", "happiness", "sadness", "neutral")
    for k, name in enumerate(classes):
        frame[f"votes_{name}"] = [3 * (i % len(classes) == k) for i in range(len(frame))]
    frame.to_csv(folder / "labelled.csv", index=False)
    return folder / "labelled.csv"


def test_one_encoder_per_fold_each_without_its_test_speaker_and_resumable(tmp_path, capsys):
    corpus = labelled_speech(tmp_path / "speech")
    speakers = sorted(pd.read_csv(corpus)["speaker"].astype(str).unique())
    folds = speakers[:2]
    out = tmp_path / "tapt"
    # Continued from the shipped encoder, as task-adaptive pretraining is meant: a few steps from a random one
    # learn too little to pass the collapse check.
    settings = ["--set", f"pretrain.encoder={PRETRAINED_ENCODER}", "--set", "pretrain.steps=16",
                "--set", "pretrain.batch_size=4", "--set", "pretrain.crop_s=1.5", "--set", "pretrain.log_every=4",
                "--set", "runtime.threads=1", "--set", f"eval.folds={','.join(folds)}"]
    command = ["pretrain", "--task-adaptive", "--per-fold", "--manifest", str(corpus), "--out", str(out)]
    assert main(command + settings) == 0
    assert "use them with --set model.encoder=" + str(out / "{fold}") in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == folds
    for fold in folds:
        record = json.loads((out / fold / PRETRAINING_RECORD).read_text())
        assert record["task_adaptive"] and record["task_adaptive_speakers"] == sorted(set(speakers) - {fold})
        assert f"without speaker(s) {fold}" in record["sources"][0]
    weights = (out / folds[0] / "model.safetensors").stat().st_mtime_ns
    assert main(command + settings + ["--resume"]) == 0  # finished folds are kept
    assert (out / folds[0] / "model.safetensors").stat().st_mtime_ns == weights
    assert main(["pretrain", "--per-fold", "--manifest", str(corpus), "--out", str(out)]) == 2
    assert "add --task-adaptive" in capsys.readouterr().err


def test_each_fold_trains_with_its_own_encoder_and_the_results_say_what_it_heard(tiny_corpus, quick, tmp_path):
    per_fold = per_fold_encoders(tmp_path / "encoders")
    overrides = {**quick, "model.encoder_mode": "frozen", "eval.folds": "S1F,S2M", "train.max_epochs": 1,
                 "train.stage1_max_epochs": 1}
    results = run_loso(load_config("demo", overrides={**overrides, "model.encoder": per_fold}), tiny_corpus,
                       tmp_path / "adapted", progress=False)
    assert [f["encoder_audio"] for f in results["folds"]] == ["task-adaptive"] * 2
    assert results["encoder_audio"] == "task-adaptive"
    assert "**Task-adaptive:**" in (tmp_path / "adapted" / "results.md").read_text()
    _, saved, _ = load_model(runs.fold_dir(tmp_path / "adapted", "S2M") / runs.MODEL)
    assert saved.model.encoder == str(tmp_path / "encoders" / "S2M")  # the fold's own encoder

    whole = fake_encoder(tmp_path / "whole-corpus", SPEAKERS)
    results = run_loso(load_config("demo", overrides={**overrides, "model.encoder": str(whole)}), tiny_corpus,
                       tmp_path / "whole", progress=False)
    assert results["encoder_audio"] == "transductive"
    assert "**Transductive:**" in (tmp_path / "whole" / "results.md").read_text()


def test_probe_scores_each_speaker_through_its_own_folds_encoder(tiny_corpus, tmp_path):
    config = load_config("demo", overrides={"model.encoder": per_fold_encoders(tmp_path / "encoders")})
    result = linear_probe(config, str(tiny_corpus), progress=False)
    assert result["encoder_audio"] == "task-adaptive" and set(result["per_speaker_ua"]) == set(SPEAKERS)
    assert 0 <= result["ua"] <= 1


def test_a_probe_curve_takes_one_encoder_per_fold_and_marks_it(tiny_corpus, tmp_path):
    config = load_config("demo")
    frame = probe_curve(config, [per_fold_encoders(tmp_path / "encoders"), "tiny"], [tiny_corpus], progress=False)
    adapted = frame.iloc[0]
    assert adapted["label"] == "encoders/{fold}" and adapted["encoder_audio"] == "task-adaptive"
    assert adapted["build_minutes"] == 4.0 and adapted["steps"] == 300  # the four folds' minutes add up
    table = curve_markdown(frame, "tapt")
    assert "| encoders/{fold} *(task-adaptive)* |" in table and "| tiny |" in table and "*task-adaptive*:" in table


def test_a_report_marks_rows_whose_encoder_heard_the_corpus():
    scores = {key: Score(70.0, 5.0, [65.0, 75.0]) for key in ("wa", "ua", "macro_f1")}
    rows = [RowSummary(label=name, method=name, point={}, n_runs=10, n_folds=10, n_seeds=1, n_draws=1, scores=scores,
                       encoder_audio=audio)
            for name, audio in (("smile-svm", "corpus-free"), ("clear-hard", "task-adaptive"))]
    report = format_report(SweepSummary(grid={"name": "tapt", "methods": ["smile-svm", "clear-hard"]}, rows=rows))
    assert "| clear-hard *(task-adaptive)* |" in report and "| smile-svm |" in report
    assert "*task-adaptive*: **Task-adaptive:**" in report and "Transductive" not in report
