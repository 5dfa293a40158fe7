"""Results of a leave-one-speaker-out run: ``results.json``, ``results.md``, ``predictions.csv``.

``results.json`` is what scripts and notebooks read (`load_results`). Its top level holds the
headline numbers -- ``wa`` and ``ua`` (means over folds, percent), ``wa_ci`` / ``ua_ci``
(95% Student-t intervals, ``[lo, hi]``), the JS metrics when the run measured them -- then the
full ``summary`` (mean, std, ci95, n of every metric), the pooled ``confusion`` matrix, one
entry per fold in ``folds``, the ``validation`` mode with the ``optimistic`` flag, and the
run's ``config``. Metric conventions are those of `ser_lib.metrics`.

``results.md`` is the same run as a Tables III-V style markdown table, and
``predictions.csv`` one row per test sample and fold with the class probabilities. Every file
is written atomically; ``results.json`` is written last, so its presence marks a complete run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..files import atomic_write_json, atomic_write_text, jsonable
from ..data.folds import Fold
from ..model.encoder import CORPUS_FREE, TASK_ADAPTIVE, TRANSDUCTIVE, most_marked
from .metrics import JS_KEYS, JS_RANGE, MIN_PAIRS_FOR_CI, PERCENT_RANGE, aggregate_folds, paired_difference, reportable_interval
from .runs import PREDICTIONS_CSV, RESULTS_JSON, RESULTS_MD

FORMAT = "ser_lib.results"
VERSION = 1
PROB_PREFIX = "prob_"
PREDICTION_COLUMNS = ("utt_id", "speaker", "fold", "label", "predicted")
TABLE_METRICS = (("wa", "WA (%)"), ("ua", "UA (%)"), ("macro_f1", "Macro F1 (%)"), ("weighted_f1", "Weighted F1 (%)"))
OPTIMISTIC_NOTE = ("**Optimistic:** validation used the test speaker itself (eval.validation=paper, as the paper "
                   "describes), so early stopping saw the test speaker and these scores overestimate "
                   "performance on unseen speakers.")
# What a run's encoder heard of the corpus (`model.encoder.encoder_audio`), when more than none of it.
ENCODER_AUDIO_NOTES = {
    TASK_ADAPTIVE: "**Task-adaptive:** the encoder was pretrained on this corpus' audio, without each fold's test "
                   "speakers (`ser pretrain --task-adaptive --per-fold`); report it apart from corpus-free encoders.",
    TRANSDUCTIVE: "**Transductive:** the encoder was pretrained on audio of the test speakers themselves, so these "
                  "scores may overestimate performance on unseen speakers; report them apart.",
}


def marked_label(label: str, encoder_audio: str | None, markdown: bool = True) -> str:
    """A row's label with what its encoder heard of the corpus, where it heard any of it: in
    italics for Markdown, plain for a figure's tick labels."""
    if encoder_audio not in ENCODER_AUDIO_NOTES:
        return label
    return f"{label} *({encoder_audio})*" if markdown else f"{label} ({encoder_audio})"


def fold_record(fold: Fold, metrics: Mapping[str, Any], **extra: Any) -> dict:
    """One entry of ``fold_results``: the fold's speakers and flag, its metrics, and `extra`
    (e.g. ``js_ambiguous_test``, ``epochs``). ``speaker`` is the fold's name (the test speaker
    under LOSO); ``test_speakers`` lists who was held out."""
    return {"speaker": fold.name, "test_speakers": list(fold.test_speakers),
            "validation_speakers": list(fold.validation_speakers),
            "train_speakers": list(fold.train_speakers), "optimistic": fold.optimistic, **metrics, **extra}


def predictions_frame(utt_ids: Sequence[str], speakers: Sequence[str], fold: str, labels: Sequence[str],
                      probs, classes: Sequence[str], **extra_columns: Sequence) -> pd.DataFrame:
    """Per-sample predictions of one fold in the ``predictions.csv`` layout.

    ``predicted`` is the most probable class; ``labels`` are the true class names ("" for
    ambiguous samples, which have no single true class). `extra_columns` (e.g. ``subset``) are
    appended.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(utt_ids), len(classes)):
        raise ValueError(f"probs must be [{len(utt_ids)}, {len(classes)}], got {probs.shape}")
    frame = pd.DataFrame({"utt_id": list(utt_ids), "speaker": list(speakers), "fold": fold,
                          "label": list(labels), "predicted": [classes[k] for k in probs.argmax(axis=1)]})
    for k, name in enumerate(classes):
        frame[PROB_PREFIX + name] = probs[:, k]
    for name, values in extra_columns.items():
        frame[name] = list(values)
    return frame


def write_results(run_dir: str | Path, summary: Mapping[str, Any] | None, fold_results: list[dict],
                  predictions: pd.DataFrame | None, config_dict: Mapping[str, Any]) -> dict:
    """Write results.json, results.md and (given predictions) predictions.csv into `run_dir`.

    `summary` is `aggregate_folds(fold_results)` (computed here when None); `config_dict` is
    `Config.to_dict()` (a `Config` is accepted too). Returns the results.json content.
    """
    run_dir = Path(run_dir)
    if hasattr(config_dict, "to_dict"):
        config_dict = config_dict.to_dict()
    if not fold_results:
        raise ValueError("write_results needs at least one fold result")
    summary = dict(summary) if summary is not None else aggregate_folds(fold_results)
    results = _results_document(summary, fold_results, config_dict)
    if predictions is not None:
        _check_predictions(predictions, results["classes"])
        buffer = io.StringIO()
        predictions.to_csv(buffer, index=False, lineterminator="\n", float_format="%.6f")
        atomic_write_text(run_dir / PREDICTIONS_CSV, buffer.getvalue())
    atomic_write_text(run_dir / RESULTS_MD, format_markdown(results))
    atomic_write_json(run_dir / RESULTS_JSON, results)
    return results


def _results_document(summary: Mapping[str, Any], fold_results: list[dict], config: Mapping[str, Any]) -> dict:
    missing = [k for k in ("wa", "ua") if k not in summary]
    if missing:
        raise ValueError(f"summary lacks {missing}; build it with ser_lib.metrics.aggregate_folds")
    mode = config.get("eval", {}).get("validation")
    optimistic = mode == "paper" or any(f.get("optimistic", False) for f in fold_results)
    mode = mode or ("paper" if optimistic else "session")
    folds = [{**fold, "validation": mode, "optimistic": bool(fold.get("optimistic", mode == "paper"))}
             for fold in fold_results]
    results: dict[str, Any] = {"format": FORMAT, "version": VERSION,
                               "classes": list(config.get("data", {}).get("classes", ())) or None,
                               "validation": mode, "optimistic": optimistic,
                               "n_folds": len(fold_results),
                               "encoder_audio": most_marked(f.get("encoder_audio") for f in fold_results)}
    for key in ("wa", "ua", *JS_KEYS):
        if key in summary:
            value = summary[key]
            if isinstance(value, Mapping):
                results |= {key: value["mean"], f"{key}_std": value.get("std"),
                            f"{key}_ci": reportable_interval(value, _bounds(key))}
            else:
                results[key] = value
    results["summary"] = {k: v for k, v in summary.items() if isinstance(v, Mapping)}
    if "confusion" in summary:
        results["confusion"] = summary["confusion"]
    results["units"] = "wa, ua, precision, recall, f1 in percent; js_* in bits (0-1)"
    results["folds"] = folds
    results["config"] = dict(config)
    return jsonable(results)


def _check_predictions(predictions: pd.DataFrame, classes: list[str] | None) -> None:
    required = list(PREDICTION_COLUMNS) + [PROB_PREFIX + c for c in classes or ()]
    missing = [c for c in required if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}; build them with predictions_frame")


def format_markdown(results: Mapping[str, Any]) -> str:
    """Tables III-V style: one row per fold, then mean ± std and the 95% CI of each metric."""
    kfold = results.get("config", {}).get("eval", {}).get("kfold", 0)
    header = ["Fold" if kfold else "Test speaker", "Validation", *[title for _, title in TABLE_METRICS]]
    rows = [[fold["speaker"], ", ".join(map(str, fold.get("validation_speakers", []))) or "—",
             *[_number(fold.get(key)) for key, _ in TABLE_METRICS]] for fold in results["folds"]]
    summary = results["summary"]
    rows.append(["**mean ± std**", "", *[_mean_std(summary.get(key)) for key, _ in TABLE_METRICS]])
    rows.append(["**95% CI**", "", *[_interval(summary.get(key), _bounds(key)) for key, _ in TABLE_METRICS]])
    title = f"Speaker-independent {kfold}-fold results" if kfold else "Leave-one-speaker-out results"
    lines = [f"# {title} ({results['n_folds']} folds)", "",
             f"Validation: `{results['validation']}`.", ""]
    if results["optimistic"]:
        lines += [f"> {OPTIMISTIC_NOTE}", ""]
    if results.get("encoder_audio", CORPUS_FREE) != CORPUS_FREE:
        lines += [f"> {ENCODER_AUDIO_NOTES[results['encoder_audio']]}", ""]
    lines += markdown_table(header, rows)
    if results["n_folds"] < MIN_PAIRS_FOR_CI:
        lines += ["", f"No confidence interval: {results['n_folds']} fold(s) are too few for one to mean anything."]
    else:
        lines += ["", "95% Student-t intervals over folds, clipped to each quantity's range."]
    js_rows = [[key, _mean_std(summary[key]), _interval(summary[key], JS_RANGE), str(summary[key]["n"])]
               for key in JS_KEYS if key in summary]
    if js_rows:
        lines += ["", "JS divergence (bits, 0-1; lower is closer):", ""]
        lines += markdown_table(["Metric", "mean ± std", "95% CI", "folds"], js_rows)
    return "\n".join(lines) + "\n"


def format_comparison(results_a: Mapping[str, Any], results_b: Mapping[str, Any],
                      names: Sequence[str] = ("A", "B")) -> str:
    """Markdown table of two runs' WA and UA with the difference A − B.

    On the same folds the difference is paired: the mean of per-fold differences with its 95%
    Student-t interval. On different folds only the difference of means is given, with a note.
    """
    name_a, name_b = names
    speakers_a = [f["speaker"] for f in results_a["folds"]]
    speakers_b = [f["speaker"] for f in results_b["folds"]]
    paired = sorted(speakers_a) == sorted(speakers_b)
    rows = []
    for key, title in TABLE_METRICS[:2]:
        cell_a, cell_b = _mean_std(results_a["summary"].get(key)), _mean_std(results_b["summary"].get(key))
        if paired:
            by_b = {f["speaker"]: f[key] for f in results_b["folds"]}
            delta = paired_difference([f[key] for f in results_a["folds"]],
                                      [by_b[f["speaker"]] for f in results_a["folds"]])
            interval = f" [{delta['ci95'][0]:+.2f}, {delta['ci95'][1]:+.2f}]" if delta["ci95"] else " (no CI: < 3 folds)"
            diff = f"{delta['delta']:+.2f}{interval}"
        else:
            diff = f"{results_a[key] - results_b[key]:+.2f}"
        rows.append([title, cell_a, cell_b, diff])
    delta_title = f"Δ ({name_a} − {name_b})" + (", paired 95% CI" if paired else "")
    lines = markdown_table(["", name_a, name_b, delta_title], rows)
    lines.append("")
    lines.append(f"{len(speakers_a)} folds, same test speakers in both runs." if paired else
                 f"Note: the runs have different folds ({speakers_a} vs {speakers_b}); Δ is a difference of means.")
    flagged = [n for n, r in zip(names, (results_a, results_b)) if r.get("optimistic")]
    if flagged:
        lines.append(f"Optimistic (validation = test speaker): {', '.join(flagged)}.")
    return "\n".join(lines) + "\n"


def load_results(run_dir: str | Path) -> dict:
    """The results.json of `run_dir` (or that file's path itself)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_JSON
    if not path.is_file():
        raise ConfigError(f"{path}: no results file (has the run finished?)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid results file: {exc}") from None
    if not isinstance(results, dict) or results.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a ser_lib results file (format {FORMAT!r} expected)")
    return results


def markdown_table(header: list, rows: list[list]) -> list[str]:
    """Lines of a Markdown table (header, separator, rows)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def _number(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _mean_std(stat) -> str:
    return "—" if not stat else f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def _interval(stat, bounds) -> str:
    interval = reportable_interval(stat, bounds)
    if interval is None:
        return "—" if not stat else "n/a (< 3 folds)"
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _bounds(key: str) -> tuple[float, float]:
    return JS_RANGE if key.startswith("js_") else PERCENT_RANGE
