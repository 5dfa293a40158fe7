"""The `ser` command line. Each sub-command is a thin wrapper around a library function;
all of them read the same typed config (`--profile`, `--config FILE.yaml`, `--set key=value`).

Errors on bad input (`SerError`) are printed as one readable message and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from .config import PROFILES, SYNTH_SIZES, Config, load_config
from .data import labels
from .data.manifest import format_problems, read_manifest, validate_manifest
from .errors import ConfigError, SerError
from .runtime import apply_threads

DEFAULT_SYNTH_DIR = Path("data/synth-small")
DEFAULT_FIGURES_DIR = Path("figures")
DEFAULT_DEMO_RUN = Path("runs/demo")
DEFAULT_CREMAD_DIR = Path("data/crema-d")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):  # `ser` or `ser manifest` without an action
        parser.print_help()
        return 2
    try:
        config = load_config(args.profile, args.config, args.set)
        apply_threads(config.runtime)
        return args.handler(args, config) or 0
    except SerError as error:
        print(f"ser: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ser: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", default="paper", choices=sorted(PROFILES), help="named config profile")
    common.add_argument("--config", metavar="YAML", help="YAML file overriding config fields")
    common.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="override one config field, e.g. --set loss.alpha=0 (repeatable)")

    parser = argparse.ArgumentParser(prog="ser", description="ser-workbench: speech emotion recognition from ambiguous speech.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    synth = commands.add_parser("synth", parents=[common], help="generate the synthetic corpus (no downloads)")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--seed", type=int, help="corpus seed (default: synth.seed)")
    synth.add_argument("--size", choices=list(SYNTH_SIZES), help="default: synth.size")
    synth.add_argument("--unlabelled", action="store_true",
                       help="unlabelled pretraining speech instead: other speakers and texts, no votes")
    synth.add_argument("--hours", type=float, help="with --unlabelled: hours of speech (default: pretrain.hours)")
    synth.set_defaults(handler=cmd_synth)

    manifest = commands.add_parser("manifest", help="build or validate corpus manifests")
    manifest_commands = manifest.add_subparsers(title="manifest commands", metavar="ACTION")
    validate = manifest_commands.add_parser("validate", parents=[common], help="report every bad row of a manifest")
    validate.add_argument("path", type=Path)
    validate.add_argument("--no-audio", action="store_true", help="do not check that audio files exist")
    validate.set_defaults(handler=cmd_manifest_validate)
    emodb = manifest_commands.add_parser("emodb", parents=[common], help="manifest for EmoDB (Berlin)")
    emodb.add_argument("--root", required=True, type=Path, help="EmoDB folder with wav/ and erkennung.txt")
    emodb.add_argument("--out", required=True, type=Path, help="manifest CSV to write")
    emodb.set_defaults(handler=cmd_manifest_emodb)
    iemocap = manifest_commands.add_parser("iemocap", parents=[common], help="manifest for IEMOCAP (your own copy)")
    iemocap.add_argument("--root", required=True, type=Path, help="IEMOCAP folder with Session1..Session5")
    iemocap.add_argument("--out", required=True, type=Path, help="manifest CSV to write")
    iemocap.add_argument("--self-assessments", action="store_true", help="also count the actors' own C-F/C-M tags")
    iemocap.add_argument("--multi-tag", choices=("split", "each"), default="split",
                         help="an evaluator's several tags share one vote (split) or get one each (each)")
    iemocap.add_argument("--audio", choices=("dialog", "sentences"), default="dialog",
                         help="dialog wav cut by start/end (default), or the per-turn sentences/wav files "
                              "(mono; use them if your dialog wavs hold both actors on two channels)")
    iemocap.set_defaults(handler=cmd_manifest_iemocap)
    cremad = manifest_commands.add_parser("crema-d", parents=[common], help="manifest for CREMA-D (crowd votes)")
    cremad.add_argument("--root", required=True, type=Path,
                        help="CREMA-D checkout with processedResults/, VideoDemographics.csv and AudioWAV/ "
                             "(the audio fetched by git lfs pull)")
    cremad.add_argument("--out", type=Path, help="manifest CSV to write (default: data/crema-d/manifest.csv, "
                                                "manifest-face.csv or manifest-audiovisual.csv)")
    cremad.add_argument("--ratings", choices=("voice", "face", "audiovisual"), default="voice",
                        help="whose votes: raters who heard the voice only (default), saw the face only, or both")
    cremad.set_defaults(handler=cmd_manifest_cremad)

    part = commands.add_parser("partition", parents=[common], help="clear/ambiguous partition (Table II)")
    part.add_argument("--manifest", required=True, type=Path)
    part.add_argument("--json", action="store_true", help="print one JSON object")
    part.set_defaults(handler=cmd_partition)

    train = commands.add_parser("train", parents=[common], help="train and evaluate one fold (two stages): leave-one-speaker-out, or k03-of-10 with eval.kfold")
    train.add_argument("--manifest", required=True, type=Path)
    train.add_argument("--fold", required=True,
                       help="the fold: its held-out (test) speaker, or k03-of-10 with eval.kfold")
    train.add_argument("--out", required=True, type=Path, help="run folder")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints")
    train.set_defaults(handler=cmd_train)

    loso = commands.add_parser("loso", parents=[common], help="leave-one-speaker-out: all or some folds, aggregated")
    loso.add_argument("--manifest", required=True, type=Path)
    loso.add_argument("--out", required=True, type=Path, help="run folder")
    loso.add_argument("--folds", help="comma-separated folds: test speakers, or k01-of-10,... with eval.kfold "
                                      "(default: eval.folds, or all)")
    loso.add_argument("--resume", action="store_true", help="skip finished folds, continue an interrupted one")
    loso.set_defaults(handler=cmd_loso)

    pretrain = commands.add_parser("pretrain", parents=[common],
                                   help="self-supervised pretraining of the temporal branch's encoder")
    pretrain.add_argument("--manifest", type=Path, action="append", default=[],
                          help="audio to pretrain on (repeatable; labels are ignored)")
    pretrain.add_argument("--audio", type=Path, action="append", default=[],
                          help="a folder of .wav/.flac files to pretrain on (repeatable)")
    pretrain.add_argument("--out", required=True, type=Path, help="the encoder folder to write (save_pretrained)")
    pretrain.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    pretrain.add_argument("--task-adaptive", action="store_true",
                          help="allow a labelled (evaluation) corpus' own audio: task-adaptive pretraining")
    pretrain.add_argument("--leave-out-speaker", action="append", default=[], metavar="SPEAKER",
                          help="with --task-adaptive: leave this speaker's audio out (repeatable)")
    pretrain.add_argument("--per-fold", action="store_true",
                          help="with --task-adaptive and one --manifest: one encoder per fold (eval.*) in OUT/<fold>, "
                               "each without the fold's test speakers; train with model.encoder=OUT/{fold}")
    pretrain.set_defaults(handler=cmd_pretrain, profile="demo")

    probe = commands.add_parser("probe", parents=[common],
                                help="linear probe of a frozen encoder (model.encoder) on a corpus' clear utterances")
    probe.add_argument("--manifest", required=True, type=Path, action="append",
                       help="a corpus to probe on; repeat for several")
    probe.add_argument("--json", action="store_true", help="print one JSON object")
    probe.add_argument("--layers", choices=("last", "all"), default="last",
                       help="probe the last hidden state (default) or every layer's, side by side")
    probe.add_argument("--encoders", nargs="+", metavar="ENCODER",
                       help="probe these encoders (model.encoder values) instead of model.encoder, and with "
                            "--report write their probe curve")
    probe.add_argument("--report", type=Path, metavar="PREFIX",
                       help="with --encoders: write PREFIX.md, PREFIX.json and PREFIX.png (UA against size and "
                            "build time)")
    probe.set_defaults(handler=cmd_probe, profile="demo")

    predict = commands.add_parser("predict", parents=[common], help="emotion distribution of an audio file")
    predict.add_argument("file", type=Path)
    predict.add_argument("--checkpoint", type=Path, help="a model.pt (default: the model of the last `make demo`)")
    predict.add_argument("--json", action="store_true", help="print {class: probability}")
    predict.set_defaults(handler=cmd_predict)

    methods = commands.add_parser("methods", help="the methods compared on the same folds, and other presets")
    methods.add_argument("--all", action="store_true", help="also the Fig. 6 / Table IX loss settings")
    methods.set_defaults(handler=cmd_methods, profile="paper", config=None, set=[])

    demo = commands.add_parser("demo", parents=[common], help="the main job on the embedded synthetic corpus")
    demo.add_argument("--data", type=Path, default=DEFAULT_SYNTH_DIR, help="where the synthetic corpus goes")
    demo.add_argument("--out", type=Path, default=DEFAULT_DEMO_RUN, help="run folder")
    demo.add_argument("--figures", type=Path, default=DEFAULT_FIGURES_DIR, help="where figures and tables go")
    demo.add_argument("--num-folds", type=int, default=4, help="LOSO folds to run (the first speakers)")
    demo.set_defaults(handler=cmd_demo, profile="demo")

    sweep = commands.add_parser("sweep", help="a grid of methods, settings and seeds over the folds (LOSO or eval.kfold), on Ray Tune")
    sweep.add_argument("--grid", required=True, type=Path, help="grid YAML (see grids/)")
    sweep.add_argument("--manifest", type=Path,
                       help="every run's corpus (not for a grid with `corpus: synth`, which generates one per run)")
    sweep.add_argument("--out", required=True, type=Path, help="sweep folder (one run folder per method/point/seed)")
    sweep.add_argument("--address", help="join this Ray cluster (default: local Ray on this machine)")
    sweep.add_argument("--resume", action="store_true", help="continue a sweep: finished folds are never rerun")
    sweep.add_argument("--concurrency", type=int, help="trials at once (default: cores / the grid's threads)")
    sweep.add_argument("--gpus-per-trial", type=float, metavar="F",
                       help="each trial's share of a GPU, e.g. 0.25 (default: none without GPUs, "
                            "0.25 for the tiny encoders, 1 otherwise)")
    sweep.add_argument("--trials-per-worker", type=int, metavar="N",
                       help="folds one worker process trains, one after the other, before it exits (default: the "
                            "grid's trials_per_worker, else 4; fewer when the folds would not fill the workers; "
                            "1: a fresh process per fold)")
    sweep.set_defaults(handler=cmd_sweep, profile="paper", config=None, set=[])

    report = commands.add_parser("report", help="tables, paired statistics and figures over a sweep folder")
    report.add_argument("sweep", type=Path, help="a folder written by `ser sweep`")
    report.add_argument("--figures", type=Path, default=DEFAULT_FIGURES_DIR, help="where the figures also go")
    report.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    report.set_defaults(handler=cmd_report, profile="paper", config=None, set=[])

    dashboard = commands.add_parser("dashboard", help="serve a run's results and label-drift explorer (Voilà)")
    dashboard.add_argument("run", type=Path, help="a run folder (e.g. runs/demo) or a folder of runs (a sweep)")
    dashboard.add_argument("--manifest", type=Path, help="the corpus manifest, for audio in the explorer (default: the one each run recorded it was trained on)")
    dashboard.add_argument("--port", type=int, default=8866)
    dashboard.add_argument("--ip", default="127.0.0.1", help="address to bind (default: this machine only)")
    dashboard.add_argument("--open", action="store_true", help="open a browser")
    dashboard.set_defaults(handler=cmd_dashboard, profile="paper", config=None, set=[])

    figures = commands.add_parser("figures", help="copy the figures of executed notebooks into figures/")
    figures.add_argument("notebooks", type=Path, nargs="+", help="executed notebooks (.ipynb)")
    figures.add_argument("--out", type=Path, default=DEFAULT_FIGURES_DIR, help="where the PNG files go")
    figures.set_defaults(handler=cmd_figures, profile="paper", config=None, set=[])

    export = commands.add_parser("export-html", help="notebooks as self-contained HTML pages (widgets render offline)")
    export.add_argument("notebooks", type=Path, nargs="+", help="executed notebooks (.ipynb)")
    export.add_argument("--out", type=Path, default=Path("build/html"), help="where the pages go (NAME.html)")
    export.set_defaults(handler=cmd_export_html, profile="paper", config=None, set=[])

    bench = commands.add_parser("bench", parents=[common],
                                help="inference cost like the paper's Table VI; training throughput")
    bench.add_argument("--encoder", help="tiny, base, a Hugging Face name or a folder (default: model.encoder)")
    bench.add_argument("--lengths", help="input lengths in seconds, comma-separated "
                       "(default: Table VI's and longer ones, DEFAULT_LENGTHS in ser_lib/benchmarking/inference.py)")
    bench.add_argument("--runs", type=int, default=100, help="timed forwards per length")
    bench.add_argument("--warmup", type=int, default=10, help="untimed forwards before them")
    bench.add_argument("--dtypes", help="fp32 and/or bf16 (autocast), comma-separated "
                                        "(default: fp32,bf16 on CUDA, fp32 elsewhere)")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--train", action="store_true", help="also measure stage-1 and stage-2 training throughput")
    bench.add_argument("--train-length", type=float, default=4.0, help="segment length of the training batches (s)")
    bench.add_argument("--train-steps", type=int, default=5, help="timed training steps per stage")
    bench.set_defaults(handler=cmd_bench)
    return parser


def cmd_synth(args, config: Config) -> int:
    from .data.corpora.synth import synthesize_corpus, synthesize_unlabelled

    seed = config.synth.seed if args.seed is None else args.seed
    if args.unlabelled:
        hours = args.hours or config.pretrain.hours
        started = time.perf_counter()
        manifest_path = synthesize_unlabelled(args.out, hours, seed=seed, num_speakers=config.pretrain.speakers,
                                              synthesizer=config.pretrain.synthesizer, workers=config.synth.workers)
        print(f"wrote {manifest_path} ({hours:g} h of unlabelled {config.pretrain.synthesizer} speech, "
              f"{config.pretrain.speakers} speakers, "
              f"seed {seed}) in {time.perf_counter() - started:.1f} s")
        return 0
    if args.hours is not None:
        raise ConfigError("--hours applies to --unlabelled speech only")
    size = args.size or config.synth.size
    started = time.perf_counter()
    temperature, confusion = config.synth.annotator_temperature, config.synth.annotator_confusion
    manifest_path = synthesize_corpus(args.out, seed=seed, size=size, progress=True, annotator_temperature=temperature,
                                      annotator_confusion=confusion)
    print(f"wrote {manifest_path} ({size}, seed {seed}, annotator temperature up to {temperature:g}, "
          f"confusion {confusion:g}) "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_pretrain(args, config: Config) -> int:
    from .train.pretrain import CollapsedError, collect_sources, default_speech, pretrain

    if (args.leave_out_speaker or args.per_fold) and not args.task_adaptive:
        raise ConfigError("--leave-out-speaker and --per-fold leave an evaluation corpus' speakers out of "
                          "task-adaptive pretraining: add --task-adaptive")
    if args.per_fold:
        return _pretrain_per_fold(args, config)
    manifests = args.manifest or ([] if args.audio else [default_speech(config, progress=True)])
    sources, described = collect_sources(manifests, args.audio, args.task_adaptive, tuple(args.leave_out_speaker))
    print(f"pretraining {config.pretrain.encoder} with {config.pretrain.objective} for {config.pretrain.steps} steps on "
          + "; ".join(described))
    try:
        summary = pretrain(config, sources, described, args.out, resume=args.resume, task_adaptive=args.task_adaptive)
    except CollapsedError as error:
        print(f"ser: {error}", file=sys.stderr)
        return 1
    final = summary["final"]
    print(f"wrote {args.out} ({summary['parameters'] / 1e6:.2f} M parameters) in {summary['wall_seconds'] / 60:.1f} min, "
          f"{summary['audio_seconds_per_second']:.0f} s of audio per second; final loss {final['loss']:.3f}; "
          f"use it with --set model.encoder={args.out}")
    return 0


def _pretrain_per_fold(args, config: Config) -> int:
    from .model.encoder import FOLD_PLACEHOLDER
    from .train.task_adaptive import pretrain_per_fold

    if len(args.manifest) != 1 or args.audio or args.leave_out_speaker:
        raise ConfigError("--per-fold takes exactly one --manifest (the evaluation corpus whose folds it follows), "
                          "and no --audio or --leave-out-speaker")
    summaries = pretrain_per_fold(config, args.manifest[0], args.out, resume=args.resume)
    minutes = sum(s["wall_seconds"] for s in summaries) / 60
    print(f"wrote {len(summaries)} task-adaptive encoders under {args.out} in {minutes:.1f} min of pretraining; "
          f"use them with --set model.encoder={args.out / FOLD_PLACEHOLDER}")
    return 0


def cmd_probe(args, config: Config) -> int:
    from .analysis.probe import linear_probe

    if args.encoders:
        return _probe_curve(args, config)
    if args.report:
        raise ConfigError("--report needs --encoders: the encoders whose probe curve to write")
    results = [linear_probe(config, manifest, progress=not args.json, layers=args.layers) for manifest in args.manifest]
    if args.json:  # one object for one corpus, a list for several
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    for manifest, result in zip(args.manifest, results):
        speakers = ", ".join(f"{s} {100 * ua:.0f}" for s, ua in result["per_speaker_ua"].items())
        audio = "" if result["encoder_audio"] == "corpus-free" else f" ({result['encoder_audio']})"
        layers = "" if args.layers == "last" else ", every layer"
        print(f"{config.model.encoder}{audio}{layers} on {manifest}: linear-probe UA {100 * result['ua']:.1f}% over "
              f"{result['utterances']} clear utterances, leave-one-speaker-out (per speaker: {speakers})")
    return 0


def _probe_curve(args, config: Config) -> int:
    from .analysis.probe_curve import curve_markdown, probe_curve, write_curve_report

    if args.layers != "last":
        raise ConfigError("--layers all probes one encoder (model.encoder); a probe curve (--encoders) reads the last layer")

    frame = probe_curve(config, args.encoders, args.manifest, progress=not args.json)
    title = args.report.name if args.report else "probe curve"
    if args.json:
        print(frame.to_json(orient="records", indent=2))
    else:
        print(curve_markdown(frame, title))
    if args.report:
        for path in write_curve_report(frame, args.report, title):
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_manifest_validate(args, config: Config) -> int:
    from .data.annotations import annotations_path, validate_annotations

    problems = validate_manifest(args.path, check_audio=not args.no_audio)
    if problems:
        print(format_problems(args.path, problems), file=sys.stderr)
        return 1
    frame = read_manifest(args.path)
    print(f"{args.path}: valid, {len(frame)} utterances, {frame['speaker'].nunique()} speakers")
    annotations = annotations_path(args.path)
    if annotations.exists():
        problems = validate_annotations(annotations, set(frame["utt_id"]))
        if problems:
            print(format_problems(annotations, problems), file=sys.stderr)
            return 1
        print(f"{annotations}: valid")
    return 0


def cmd_manifest_emodb(args, config: Config) -> int:
    from .data.corpora.emodb import build_emodb_manifest

    _print_summary(build_emodb_manifest(args.root, args.out), args.out)
    return 0


def cmd_manifest_iemocap(args, config: Config) -> int:
    from .data.corpora.iemocap import build_iemocap_manifest

    summary = build_iemocap_manifest(args.root, args.out, self_assessments=args.self_assessments,
                                     multi_tag=args.multi_tag, audio=args.audio)
    _print_summary(summary, args.out)
    return 0


def cmd_manifest_cremad(args, config: Config) -> int:
    from .data.corpora.cremad import build_cremad_manifest

    name = "manifest.csv" if args.ratings == "voice" else f"manifest-{args.ratings}.csv"
    out = args.out or DEFAULT_CREMAD_DIR / name
    _print_summary(build_cremad_manifest(args.root, out, ratings=args.ratings), out)
    return 0


def cmd_partition(args, config: Config) -> int:
    summary = labels.summarize(labels.partition(read_manifest(args.manifest), config.data))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(labels.format_table(summary))
        print(f"\n{summary['ambiguous_fraction']:.1%} ambiguous; {summary['dropped']} dropped "
              f"(majority for an emotion outside {', '.join(summary['classes'])}, or no target vote)")
    return 0


def cmd_train(args, config: Config) -> int:
    from .train.loso import run_loso

    config.eval.folds = (args.fold,)
    results = run_loso(config, args.manifest, args.out, resume=args.resume)
    print(_results_line(results, args.out))
    return 0


def cmd_loso(args, config: Config) -> int:
    from .analysis.results import format_markdown
    from .train.loso import run_loso

    if args.folds:
        config.eval.folds = tuple(s.strip() for s in args.folds.split(",") if s.strip())
    results = run_loso(config, args.manifest, args.out, resume=args.resume)
    print(format_markdown(results))
    print(_results_line(results, args.out))
    return 0


def cmd_predict(args, config: Config) -> int:
    from .predict import DEFAULT_CHECKPOINT, predict_file

    distribution = predict_file(args.file, args.checkpoint or DEFAULT_CHECKPOINT, config.runtime.device)
    if args.json:
        print(json.dumps(distribution))
    else:
        for name, probability in sorted(distribution.items(), key=lambda item: -item[1]):
            print(f"{name:>12s}  {probability:6.3f}  {'#' * round(40 * probability)}")
    return 0


def cmd_methods(args, config: Config) -> int:
    from .method.presets import METHODS, PRESETS, format_presets

    print(format_presets(tuple(PRESETS) if args.all else METHODS))
    print("\nApply one with --set (each line's overrides) or, in Python, method.presets.apply_preset.")
    return 0


def cmd_demo(args, config: Config) -> int:
    from .demo import run_demo

    started = time.perf_counter()
    run_demo(config, args.data, args.out, args.figures, num_folds=args.num_folds)
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


def cmd_sweep(args, config: Config) -> int:
    from .experiments.sweep import run_sweep

    outcome = run_sweep(args.grid, args.manifest, args.out, address=args.address, resume=args.resume,
                        concurrency=args.concurrency, gpus=args.gpus_per_trial,
                        trials_per_worker=args.trials_per_worker)
    print(f"{outcome.trained} trials trained, {outcome.already_finished} finished before, "
          f"{len(outcome.failed)} failed; {len(outcome.complete_runs)} complete runs; "
          f"{outcome.wall_seconds:.0f} s. Report: ser report {args.out}")
    for failure in outcome.failed:
        print(f"  failed: {failure['trial']}: {failure['error']}", file=sys.stderr)
    return 1 if outcome.failed else 0


def cmd_report(args, config: Config) -> int:
    from .experiments.report import write_report

    report = write_report(args.sweep, args.figures)
    if args.json:
        print(json.dumps(report.summary, indent=2))
    else:
        print(report.markdown)
        print(f"\nwrote {', '.join(str(p) for p in report.paths)}")
    return 0


def cmd_dashboard(args, config: Config) -> int:
    from .analysis.dashboard import serve

    return serve(args.run, args.manifest, port=args.port, ip=args.ip, open_browser=args.open)


def cmd_figures(args, config: Config) -> int:
    from .analysis.export import notebook_figures

    for notebook in args.notebooks:
        paths = notebook_figures(notebook, args.out)
        print(f"{notebook}: {', '.join(p.name for p in paths)}")
    return 0


def cmd_export_html(args, config: Config) -> int:
    from .analysis.export import export_html

    for notebook in args.notebooks:
        print(f"wrote {export_html(notebook, args.out / (notebook.stem + '.html'))}")
    return 0


def cmd_bench(args, config: Config) -> int:
    from .benchmarking import inference, training
    from .benchmarking.peaks import measure_peaks
    from .benchmarking.report import format_markdown, format_training_markdown
    from .benchmarking.workload import with_encoder
    from .runtime import select_device

    encoder = config.model.encoder if args.encoder is None else args.encoder
    lengths = inference.DEFAULT_LENGTHS if args.lengths is None else _parse_seconds(args.lengths, "--lengths")
    device = select_device(config.runtime.device)
    dtypes = inference.default_dtypes(device) if args.dtypes is None else _parse_list(args.dtypes)
    # Check the arguments before the first measurement, not minutes into it.
    with_encoder(config, encoder)
    inference.check_bench_args(lengths, args.runs, args.warmup, dtypes)
    if args.train:
        training.check_training_args(args.train_length, args.train_steps, 0)
    peaks = measure_peaks(device)
    rows = inference.run_benchmark(config, encoder, lengths, args.runs, device, dtypes, warmup=args.warmup,
                                   peaks=peaks, progress=True)
    train = None
    if args.train:
        train = training.measure_training_throughput(config, encoder, device, args.train_length,
                                                     args.train_steps, peaks=peaks)
    if args.json:
        report = {"rows": rows, "peaks": peaks}
        if train is not None:
            report["train"] = train
        print(json.dumps(report, indent=2))
    else:
        print(format_markdown(rows, peaks))
        if train is not None:
            print()
            print(format_training_markdown(train))
    return 0


def _parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse_seconds(text: str, option: str) -> list[float]:
    try:
        return [float(item) for item in _parse_list(text)]
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated seconds, got {text!r}") from None


def _results_line(results: dict, out: Path) -> str:
    optimistic = " (optimistic: validated on the test speakers)" if results.get("optimistic") else ""
    cells = []
    for key in ("wa", "ua"):
        ci = results.get(f"{key}_ci")
        interval = f"95% CI {ci[0]:.2f}-{ci[1]:.2f}" if ci else "no CI from < 3 folds"
        cells.append(f"{key.upper()} {results[key]:.2f}% ({interval})")
    return f"{', '.join(cells)} over {len(results['folds'])} fold(s){optimistic}; results in {out}"


def _print_summary(summary, out: Path) -> None:
    if dataclasses.is_dataclass(summary):
        summary = dataclasses.asdict(summary)
    print(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
