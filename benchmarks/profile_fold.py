"""Where one LOSO fold's training time goes: a profile by phase and by model part.

    python benchmarks/profile_fold.py [--profile demo] [--fold Ses01F] [--corpus MANIFEST] [--set key=value ...]

Trains one fold of the synthetic `small` corpus (generated into data/synth-small if missing; or
of the `--corpus` manifest) exactly as `ser demo` does, with timers around every phase. Its
caches live in a fresh temporary folder: a shared stage 1 or cached features from an earlier
run would leave phases unmeasured.

- feature extraction: loading, cutting and filterbanks of the fold's utterances (cold cache),
  and reading them back from the feature cache (warm), as a run does;
- data loading: the training loader's batches (collation, padding);
- forward, split by model part with forward hooks (CPU execution is synchronous, so a hook's
  wall time is the part's time): wav2vec2's convolutional front end, the transformer (feature
  projection, masking, encoder layers), attention pooling, the spatial CNN, fusion + classifier;
- loss (eqs. 6-11), backward, gradient clipping + Adam step, label-store bookkeeping;
- evaluation: validation after every epoch, test and ambiguous predictions at the end.

Backward cannot be timed per part with hooks (autograd interleaves the branches), so it is
split in proportion to each part's backward time measured alone on one representative batch
(forward+backward minus forward); that split is labelled "est." in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from ser_lib.config import load_config
from ser_lib.data.cache import FeatureCache
from ser_lib.data.corpora.prepare import prepare_corpus
from ser_lib.data.labels import load_partition
from ser_lib.runtime import apply_threads
from ser_lib.train import algorithm, stage
from ser_lib.data.folds import loso_folds, speakers_of
from ser_lib.train.fold_data import prepare_fold

TIMES: dict[str, float] = defaultdict(float)
IN_TRAINING_STEP = [False]  # forward hooks count training steps only (evaluation is timed apart)


@contextlib.contextmanager
def timed(name: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        TIMES[name] += time.perf_counter() - started


def model_parts(model) -> dict[str, list[torch.nn.Module]]:
    parts = {}
    if getattr(model, "temporal", None) is not None:
        encoder = model.temporal.encoder
        parts["wav2vec2 conv front end"] = [encoder.feature_extractor]
        parts["wav2vec2 transformer"] = [encoder.feature_projection, encoder.encoder]
        parts["attention pooling"] = [model.temporal.pooling]
    if getattr(model, "spatial", None) is not None:
        parts["spatial CNN"] = [model.spatial]
    heads = [getattr(model, name) for name in ("fusion", "classifier", "head") if getattr(model, name, None) is not None]
    parts["fusion + classifier"] = heads
    return parts


def add_forward_timers(model) -> list:
    handles = []
    for name, modules in model_parts(model).items():
        for module in modules:
            if getattr(module, "_profile_timer", False):
                continue  # stage 2 deep-copies stage 1's temporal branch, hooks included
            module._profile_timer = True
            starts = []
            handles.append(module.register_forward_pre_hook(lambda m, a, s=starts: s.append(time.perf_counter())))
            handles.append(module.register_forward_hook(lambda m, a, o, s=starts, n=name: _stop(n, s)))
    return handles


def _stop(name: str, starts: list) -> None:
    elapsed = time.perf_counter() - starts.pop()
    if IN_TRAINING_STEP[0]:
        TIMES[f"forward: {name}"] += elapsed


def instrument() -> None:
    """Wrap the training step's functions and the loader with timers (module attributes, so the
    real `train_fold` runs unchanged)."""
    evaluate, predict = stage.evaluate, algorithm.predict

    def timed_forward_loss(model, batch, loss_fn, device, precision="auto"):
        add_forward_timers(model)
        IN_TRAINING_STEP[0] = True
        with timed("forward (all)"):
            with stage.autocast(device, precision):
                logits = model(batch)["logits"]
        IN_TRAINING_STEP[0] = False
        with timed("loss (eqs. 6-11)"):
            return loss_fn(logits.float(), batch["y_soft"], batch["ambiguous"])

    def timed_optimizer_step(loss, model, optimizer, grad_clip, scaler=None):
        # stage.optimizer_step, split into its two timed halves.
        scaler = stage._NO_SCALING if scaler is None else scaler
        optimizer.zero_grad(set_to_none=True)
        with timed("backward (all)"):
            scaler.scale(loss).backward()
        with timed("gradient clipping + Adam step"):
            scaler.unscale_(optimizer)
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
        return scaler.get_scale() >= scale

    def timed_evaluate(*args, **kwargs):
        with timed("evaluation (validation every epoch)"):
            return evaluate(*args, **kwargs)

    def timed_predict(*args, **kwargs):
        with timed("evaluation (test, ambiguous, truth)"):
            return predict(*args, **kwargs)

    freeze = algorithm.freeze_front_end

    def timed_freeze(*args, **kwargs):
        with timed("wav2vec2 front end, once per fold (frozen)"):
            return freeze(*args, **kwargs)

    algorithm.freeze_front_end = timed_freeze
    original_epoch = stage.StageRunner._train_epoch

    def timed_epoch(self, epoch):
        with timed("training epochs (all)"):
            return original_epoch(self, epoch)

    for real, timed_copy in ((stage.forward_loss, timed_forward_loss), (stage.optimizer_step, timed_optimizer_step)):
        # A stand-in must take what the training loop passes, or the profile breaks or lies.
        if list(inspect.signature(real).parameters) != list(inspect.signature(timed_copy).parameters):
            raise TypeError(f"profile_fold's stand-in for stage.{real.__name__} has another signature: update it")
    stage.forward_loss, stage.optimizer_step, stage.evaluate = timed_forward_loss, timed_optimizer_step, timed_evaluate
    algorithm.predict = timed_predict
    stage.StageRunner._train_epoch = timed_epoch


def backward_shares(model, batch, repeats: int = 5) -> dict[str, float]:
    """Each part's backward time alone on one batch. The temporal parts form a chain (front end →
    transformer → pooling), so each is the backward up to its output minus the one before; a
    frozen front end that the batch's precomputed features replace costs nothing."""
    parts = model_parts(model)
    chain = {name: _part_backward_seconds(model, parts[name][-1], batch, repeats)
             for name in ("wav2vec2 conv front end", "wav2vec2 transformer", "attention pooling") if name in parts}
    shares, before = {}, 0.0
    for name, seconds in chain.items():
        shares[name], before = max(0.0, seconds - before), max(before, seconds)
    if "spatial CNN" in parts:
        shares["spatial CNN"] = _part_backward_seconds(model, parts["spatial CNN"][0], batch, repeats)
    return shares


def _part_backward_seconds(model, module, batch, repeats: int = 5) -> float:
    """Backward seconds of everything up to `module`'s output (0 when it does not run or needs
    no gradient), measured as forward+backward minus forward."""
    captured = {}
    handle = module.register_forward_hook(lambda m, a, o: captured.__setitem__("out", o))
    total_fwd, total_both = 0.0, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            model(batch)
        total_fwd += time.perf_counter() - start
        captured.clear()
        start = time.perf_counter()
        model(batch)
        out = captured.get("out")
        out = out.last_hidden_state if hasattr(out, "last_hidden_state") else out
        out = out[0] if isinstance(out, tuple) else out
        if out is None or not out.requires_grad:
            handle.remove()
            return 0.0
        out.float().sum().backward()
        total_both += time.perf_counter() - start
        model.zero_grad(set_to_none=True)
    handle.remove()
    return max(0.0, (total_both - total_fwd) / repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--fold", default=None, help="test speaker (default: the first)")
    parser.add_argument("--data", default="data/synth-small", help="where the synthetic corpus is generated")
    parser.add_argument("--corpus", default="synthetic", help="'synthetic' or a manifest path")
    parser.add_argument("--backward-repeats", type=int, default=5, help="timed repeats per part for the backward split")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load_config(args.profile, overrides=args.set)
    apply_threads(config.runtime)
    manifest = prepare_corpus(args.corpus, args.data, size=config.synth.size, seed=config.synth.seed)
    parted = load_partition(manifest, config.data)
    speaker = args.fold or speakers_of(parted)[0]
    config.eval.folds = (speaker,)
    fold = loso_folds(parted, config.eval)[0]

    with tempfile.TemporaryDirectory() as tmp:
        config.cache_dir = str(Path(tmp) / "cache")  # features and the shared stage 1, both cold
        cache = FeatureCache(config.cache_dir)
        with timed("feature extraction (cold cache)"):
            prepare_fold(parted, fold, config, cache, progress=False)
        with timed("feature cache read (warm, as a run does)"):
            data = prepare_fold(parted, fold, config, cache, progress=False)
        instrument()
        started = time.perf_counter()
        record = algorithm.train_fold(config, parted, fold, Path(tmp) / "fold", cache, progress=False)
        fold_seconds = time.perf_counter() - started
        measured = dict(TIMES)  # before the per-part backward measurement below adds to it

        model = algorithm.SERModel.from_stage1(algorithm.TemporalClassifier(config.model, len(data.classes)),
                                               config.model, len(data.classes)) \
            if config.model.variant != "spatial" else algorithm.SERModel(config.model, len(data.classes))
        if config.model.freeze_feature_encoder and model.temporal is not None:
            algorithm.freeze_front_end(model.temporal, data.every_sample, torch.device("cpu"))
        loader = stage.make_loader(data.train, config.train.batch_size, shuffle=True, seed=0)
        batch = next(iter(loader))
        shares = backward_shares(model.train(), batch, args.backward_repeats)

    report(fold_seconds, measured, shares, record, speaker)


def report(fold_seconds: float, t: dict, shares: dict, record: dict, speaker: str) -> None:
    parts_fwd = sum(v for k, v in t.items() if k.startswith("forward: "))
    t["forward: other (masks, normalisation)"] = max(0.0, t.get("forward (all)", 0.0) - parts_fwd)
    steps_measured = sum(t.get(k, 0.0) for k in ("forward (all)", "loss (eqs. 6-11)", "backward (all)",
                                                 "gradient clipping + Adam step"))
    t["data loading + label store"] = t.get("training epochs (all)", 0.0) - steps_measured
    backward_total = t.get("backward (all)", 0.0)
    share_total = sum(shares.values()) or 1.0
    rows = [("feature extraction (cold cache, once per corpus)", t.get("feature extraction (cold cache)", 0.0)),
            ("feature cache read (every run)", t.get("feature cache read (warm, as a run does)", 0.0)),
            ("wav2vec2 front end, once per fold (frozen)", t.get("wav2vec2 front end, once per fold (frozen)", 0.0)),
            ("data loading + label store", t["data loading + label store"])]
    rows += [(k, v) for k, v in t.items() if k.startswith("forward: ")]
    rows += [(f"backward: {name} (est.)", backward_total * share / share_total) for name, share in shares.items()]
    rows += [("loss (eqs. 6-11)", t.get("loss (eqs. 6-11)", 0.0)),
             ("gradient clipping + Adam step", t.get("gradient clipping + Adam step", 0.0)),
             ("evaluation (validation every epoch)", t.get("evaluation (validation every epoch)", 0.0)),
             ("evaluation (test, ambiguous, truth)", t.get("evaluation (test, ambiguous, truth)", 0.0))]
    accounted = sum(v for name, v in rows[1:])
    rows.append(("other (model building, checkpoints, files)", fold_seconds - accounted))
    print(f"fold {speaker}, profile with overrides: threads={torch.get_num_threads()}, "
          f"epochs stage1/stage2 {record['best_epoch']}, {record['train_samples_seen']} segments seen, "
          f"stage 1 {'reused from the cache' if record['stage1_reused'] else 'trained'}")
    print(f"wall time of the fold (warm cache): {fold_seconds:.1f} s; backward split on the "
          f"measured total {backward_total:.1f} s by parts' backward alone on one batch")
    print("\n| phase | seconds | share of the fold |\n|---|---|---|")
    for name, seconds in rows:
        share = "—" if name.startswith("feature extraction") else f"{100 * seconds / fold_seconds:.1f}%"
        print(f"| {name} | {seconds:.4f} | {share} |")  # 0.1 ms: a tiny fold's loss takes a few ms


if __name__ == "__main__":
    main()
