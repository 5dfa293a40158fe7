"""A probe curve: several encoders' linear-probe UA on several corpora, against their size and build time.

`ser probe --encoders A B C --manifest M1 --manifest M2 --report PREFIX` writes PREFIX.md (the table),
PREFIX.json (every probe's result) and PREFIX.png (UA against parameters and against build time).
An encoder is anything `model.encoder` takes; a `ser pretrain` folder also gives its objective,
steps, corpus and build time (`pretraining.json`), a named random encoder a build time of 0.
"""

from __future__ import annotations

import dataclasses
import glob
from pathlib import Path

import pandas as pd

from ..config import Config
from ..files import atomic_write_json, atomic_write_text
from ..errors import ConfigError
from ..model.encoder import CORPUS_FREE, FOLD_PLACEHOLDER, build_encoder, most_marked, pretraining_record
from .probe import linear_probe
from .results import marked_label


def encoder_facts(config: Config, encoder: str) -> dict:
    """What an encoder is: its parameters and, for a pretraining folder, how it was built. For one
    encoder per fold (`DIR/{fold}`), the folds' build times add up and their hours are averaged."""
    folders = sorted(glob.glob(encoder.replace(FOLD_PLACEHOLDER, "*"))) if FOLD_PLACEHOLDER in encoder else [encoder]
    if not folders:
        raise ConfigError(f"--encoders {encoder}: no folder matches it; build them with `ser pretrain --per-fold`")
    records = [r for r in map(pretraining_record, folders) if r is not None]
    parameters = (records[0] if records else {}).get("parameters") or _count_parameters(config, folders[0])
    label = Path(encoder).name if FOLD_PLACEHOLDER not in encoder else f"{Path(encoder).parent.name}/{FOLD_PLACEHOLDER}"
    facts = {"encoder": encoder, "label": label, "parameters": parameters,
             "fp32_mb": 4 * parameters / 1e6, "objective": "none (random)", "steps": 0, "seed": None, "build_minutes": 0.0,
             "threads": None, "corpus_hours": 0.0, "prosody_weight": 0.0, "distortions": ""}
    if records:
        summary, settings = records[0], records[0]["settings"]
        facts |= {"objective": summary["objective"], "steps": settings["steps"], "seed": summary["seed"],
                  "build_minutes": sum(r["wall_seconds"] for r in records) / 60, "threads": summary["torch_threads"],
                  "corpus_hours": sum(r["corpus_hours"] for r in records) / len(records),
                  "prosody_weight": settings.get("prosody_weight", 0.0),
                  "distortions": ",".join(settings.get("distortions", []))}
    return facts


def _count_parameters(config: Config, encoder: str) -> int:
    """An encoder whose pretraining record does not hold its parameter count (a named random one, a
    folder saved elsewhere) is built to count them."""
    model = dataclasses.replace(config.model, encoder=encoder)
    return sum(p.numel() for p in build_encoder(model).parameters())


def probe_curve(config: Config, encoders: list[str], manifests: list[Path], progress: bool = True) -> pd.DataFrame:
    """One row per (encoder, corpus): the encoder's facts and its linear-probe UA (%) on the corpus."""
    rows = []
    for encoder in encoders:
        facts = encoder_facts(config, encoder)
        probed = dataclasses.replace(config, model=dataclasses.replace(config.model, encoder=encoder))
        for manifest in manifests:
            result = linear_probe(probed, str(manifest), progress=progress)
            rows.append(facts | {"corpus": Path(manifest).parent.name, "utterances": result["utterances"],
                                 "probe_ua": 100 * result["ua"], "encoder_audio": result["encoder_audio"]})
    return pd.DataFrame(rows)


def curve_markdown(frame: pd.DataFrame, title: str) -> str:
    """The table: one row per encoder, one UA column per corpus."""
    wide = frame.pivot_table(index="label", columns="corpus", values="probe_ua", sort=False)
    facts = frame.drop_duplicates("label").set_index("label")
    lines = [f"# {title}", "",
             "Linear-probe UA (%): a logistic regression on each frozen encoder's mean last hidden state, "
             "clear utterances, leave-one-speaker-out (`ser probe`).", "",
             "| encoder | parameters | fp32 MB | objective | steps | seed | speech (h) | build (min) | threads | "
             + " | ".join(f"{c} UA" for c in wide.columns) + " |",
             "|---|---|---|---|---|---|---|---|---|" + "---|" * len(wide.columns)]
    marks = frame.groupby("label", sort=False)["encoder_audio"].agg(most_marked)
    for label, row in wide.iterrows():
        f = facts.loc[label]
        extra = [f"prosody workers x{f.prosody_weight:g}"] if f.prosody_weight else []
        extra += [f"distortions {f.distortions}"] if f.distortions else []
        objective = f.objective + (f" + {', '.join(extra)}" if extra else "")
        threads = "–" if pd.isna(f.threads) else f"{int(f.threads)}"
        seed = "–" if pd.isna(f.seed) else f"{int(f.seed)}"
        cells = [marked_label(label, marks[label]), f"{f.parameters / 1e6:.2f} M", f"{f.fp32_mb:.1f}", objective, f"{int(f.steps)}", seed,
                 f"{f.corpus_hours:.2f}", f"{f.build_minutes:.1f}", threads] + [f"{row[c]:.1f}" for c in wide.columns]
        lines.append("| " + " | ".join(cells) + " |")
    counts = frame.drop_duplicates("corpus").set_index("corpus")["utterances"]
    lines += ["", "Clear utterances probed: " + ", ".join(f"{c} {n}" for c, n in counts.items()) + "."]
    if (marks != CORPUS_FREE).any():
        lines += ["", "*task-adaptive*: pretrained on the probed corpus' audio, each speaker scored through an encoder "
                      "that never heard it (`ser pretrain --task-adaptive --per-fold`); its build time is the folds' "
                      "sum. *transductive*: it heard the scored speakers. Both are reported apart from corpus-free "
                      "encoders."]
    return "\n".join(lines) + "\n"


def write_curve_report(frame: pd.DataFrame, prefix: str | Path, title: str) -> list[Path]:
    """PREFIX.md, PREFIX.json and PREFIX.png, each written atomically."""
    from .plots import plot_probe_curve, save_figure

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_suffix(".md"), prefix.with_suffix(".json"), prefix.with_suffix(".png")]
    atomic_write_text(paths[0], curve_markdown(frame, title) + f"\nFigure: `{paths[2].as_posix()}`\n")
    atomic_write_json(paths[1], frame.to_dict("records"))
    save_figure(plot_probe_curve(frame, title), paths[2])
    return paths
