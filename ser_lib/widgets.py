"""An interactive explorer of label drift during training (eq. 6), for notebook 04.

During stage 2 every ambiguous training sample's observed soft label y_s (eq. 5) is blended
with the model's prediction y_g into the corrected label y_c = (1-α)·y_s + α·y_g (eq. 6); the
label store of each fold (``<run>/fold-<speaker>/label_history.npz``) keeps the per-epoch means
of y_c and y_g. `LabelDriftExplorer` shows, for one sample and one epoch, y_s, y_c, y_g and (on
synthetic corpora) the true distribution, with the sample's audio and log-mel filterbank.

All logic lives in plain methods (`select_fold`, `set_filter`, `select`, `set_epoch`,
`current_bars`), so tests drive it from Python; the ipywidgets controls only call them.
The widgets show figures as PNG display data in `Output`s and close them at once, so a
figure is drawn once per change and never shown a second time by the inline backend; the
figure methods themselves return open pyplot figures for `plt.show()` in a notebook.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import soundfile
import torch
from matplotlib.figure import Figure

from .audio import cut_and_pad, load_utterance
from .config import Config, apply_overrides, flatten
from .divergence import js_divergence
from .errors import ConfigError, ManifestError, SerError
from .experiment import FOLD_PREFIX, label_drift_curve
from .features import fbank
from .label_store import LabelStore
from .manifest import read_manifest
from .plots import plot_label_drift

STORE_NAME = "label_history.npz"
ANY = "any"
ORDERS = ("drift", "id")  # largest drift first, or by sample id
BAR_COLORS = {"observed": "0.6", "corrected": "C0", "predicted": "C1", "true": "C2"}


def load_fold_stores(run_dir: str | Path) -> dict[str, LabelStore]:
    """The label store of every fold of a run that has one, keyed by test speaker, sorted."""
    run_dir = Path(run_dir)
    paths = sorted(run_dir.glob(f"{FOLD_PREFIX}*/{STORE_NAME}"))
    if not paths:
        raise SerError(f"run folder {run_dir} has no {FOLD_PREFIX}*/{STORE_NAME}: train it first "
                       "(a fold writes its label store when its training ends)")
    return {path.parent.name[len(FOLD_PREFIX):]: LabelStore.load(path) for path in paths}


def run_config(run_dir: str | Path) -> Config:
    """The config a run was trained with (its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    try:
        tree = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; pass the run's config explicitly") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    config = Config()
    apply_overrides(config, flatten(tree))
    return config.validate()


def split_sample_id(sample_id: str) -> tuple[str, int]:
    """``"{utt_id}#{k}"`` -> (utt_id, k): the k-th segment of an utterance (see data.Sample)."""
    utt_id, sep, index = sample_id.rpartition("#")
    if not sep or not utt_id or not index.isdigit():
        raise SerError(f"sample id {sample_id!r} is not of the form '<utt_id>#<segment index>'")
    return utt_id, int(index)


@dataclass(frozen=True)
class DriftFilter:
    """Which samples the explorer lists. Drift is the JS divergence (bits) between y_s and the
    sample's last corrected label y_c; None / the full range means no bound."""

    cls: str | None = None  # argmax class of y_s
    subset: str | None = None
    min_drift: float = 0.0
    max_drift: float = math.inf
    order: str = "drift"


class LabelDriftExplorer:
    """Per-sample view of y_s, y_c, y_g and the truth over the epochs of one fold at a time."""

    def __init__(self, stores: Mapping[str, LabelStore], manifest: pd.DataFrame | None = None,
                 config: Config | None = None):
        """`stores`: fold name -> label store (see `load_fold_stores`); `manifest`: a frame from
        `read_manifest` (its attrs["root"] resolves audio paths), None for no audio; `config`:
        the run's config (sample rate, segmentation and filterbank settings)."""
        if not stores:
            raise SerError("the label-drift explorer needs at least one fold's label store")
        self._stores = dict(stores)
        classes = {store.classes for store in self._stores.values()}
        if len(classes) != 1:
            raise SerError(f"the folds' label stores have different classes: {sorted(classes)}")
        self.classes: tuple[str, ...] = classes.pop()
        self.config = config if config is not None else Config()
        self._manifest = None
        if manifest is not None:
            if "root" not in manifest.attrs:
                raise ManifestError("the explorer needs a manifest frame from read_manifest (attrs['root'] "
                                    "locates the audio files)")
            self._manifest = manifest.set_index(manifest["utt_id"].astype(str), drop=False)
            self._manifest.attrs = dict(manifest.attrs)
        self._tables = {fold: _sample_table(store) for fold, store in self._stores.items()}

        self._fold = next(iter(self._stores))
        self._filter = DriftFilter()
        self._sample: str | None = None
        self._epoch: int | None = None
        self._audio_sample: str | None = None
        self.audio_error: str | None = None  # why the current sample has no audio, if so
        self._syncing = False
        self._build_controls()
        self.select_fold(self._fold)

    @classmethod
    def from_run(cls, run_dir: str | Path, manifest: str | Path | pd.DataFrame | None = None,
                 config: Config | None = None) -> "LabelDriftExplorer":
        """An explorer of a run folder; `manifest` (path or frame) gives the audio, `config`
        defaults to the run's ``config.json``."""
        if isinstance(manifest, (str, Path)):
            manifest = read_manifest(manifest)
        return cls(load_fold_stores(run_dir), manifest, config if config is not None else run_config(run_dir))

    # ------------------------------------------------------------------ state

    @property
    def folds(self) -> list[str]:
        return list(self._stores)

    @property
    def fold(self) -> str:
        return self._fold

    @property
    def store(self) -> LabelStore:
        return self._stores[self._fold]

    @property
    def epochs(self) -> list[int]:
        return self.store.epochs

    @property
    def epoch(self) -> int | None:
        return self._epoch

    @property
    def sample_id(self) -> str | None:
        return self._sample

    @property
    def filter(self) -> DriftFilter:
        return self._filter

    @property
    def options(self) -> list[str]:
        """The sample ids the current fold and filter show, in display order."""
        table = self._tables[self._fold]
        f = self._filter
        keep = np.ones(len(table), dtype=bool)
        if f.cls is not None:
            keep &= (table["class"] == f.cls).to_numpy()
        if f.subset is not None:
            keep &= (table["subset"] == f.subset).to_numpy()
        if f.min_drift > 0 or f.max_drift < math.inf:  # an unrecorded sample (NaN drift) has none
            drift = table["drift"].to_numpy()
            keep &= (drift >= f.min_drift) & (drift <= f.max_drift)
        shown = table[keep]
        if f.order == "drift":
            shown = shown.sort_values(["drift", "id"], ascending=[False, True], na_position="last")
        return shown["id"].tolist()

    def table(self, fold: str | None = None) -> pd.DataFrame:
        """One row per sample of a fold: id, subset, class (argmax y_s), drift (bits), last corrected
        class, true class and JS divergence of y_s and of the last y_c to the truth (when known)."""
        return self._tables[self._check_fold(fold or self._fold)].copy()

    def folds_of(self, sample_id: str) -> list[str]:
        """The folds whose training set holds the sample (in LOSO: those that neither test nor
        validate on its speaker)."""
        return [fold for fold, store in self._stores.items() if sample_id in store]

    # ------------------------------------------------------------------ actions

    def select_fold(self, fold: str) -> None:
        self._fold = self._check_fold(fold)
        epochs = self.epochs
        if self._epoch not in epochs:
            self._epoch = epochs[-1] if epochs else None
        self._filter = replace(self._filter, min_drift=0.0, max_drift=math.inf)  # drift ranges differ per fold
        with self._sync():
            self.fold_dropdown.value = fold
            with self.epoch_slider.hold_trait_notifications():
                self.epoch_slider.min, self.epoch_slider.max = (epochs[0], epochs[-1]) if epochs else (0, 0)
                self.epoch_slider.value = self._epoch if self._epoch is not None else 0
            self.epoch_slider.disabled = not epochs
            drifts = self._tables[fold]["drift"].dropna()
            top = max(1e-3, math.ceil(1000 * drifts.max()) / 1000) if len(drifts) else 1e-3
            with self.drift_slider.hold_trait_notifications():
                self.drift_slider.max = top
                self.drift_slider.step = top / 200
                self.drift_slider.value = (0.0, top)
        self._refresh_options()

    def set_filter(self, cls: str | None = None, subset: str | None = None, min_drift: float = 0.0,
                   max_drift: float | None = None, order: str = "drift") -> list[str]:
        """Show only samples whose y_s argmax is `cls` (a tie goes to the first class), of `subset`,
        with drift in [min_drift, max_drift] bits (None = no bound), largest drift first ("drift")
        or by id ("id").
        Every call replaces the whole filter. Returns the visible sample ids."""
        cls = None if cls in (None, ANY) else cls
        subset = None if subset in (None, ANY) else subset
        if cls is not None and cls not in self.classes:
            raise ConfigError(f"unknown class {cls!r}; choose one of {[ANY, *self.classes]}")
        subsets = self._subsets()
        if subset is not None and subset not in subsets:
            raise ConfigError(f"unknown subset {subset!r}; the label stores hold {[ANY, *subsets]}")
        max_drift = math.inf if max_drift is None else float(max_drift)
        if not 0.0 <= float(min_drift) <= max_drift:
            raise ConfigError(f"need 0 <= min_drift <= max_drift, got {min_drift} and {max_drift}")
        if order not in ORDERS:
            raise ConfigError(f"order must be one of {ORDERS}, got {order!r}")
        self._filter = DriftFilter(cls, subset, float(min_drift), max_drift, order)
        with self._sync():
            self.class_dropdown.value = cls or ANY
            self.subset_dropdown.value = subset or ANY
            top = self.drift_slider.max
            self.drift_slider.value = (min(float(min_drift), top), min(max_drift, top))
            self.order_toggle.value = order
        self._refresh_options()
        return self.options

    def select(self, sample_id: str) -> None:
        """Show `sample_id` (a segment id ``"{utt_id}#{k}"``) of the current fold."""
        if sample_id not in self.store:
            elsewhere = self.folds_of(sample_id)
            where = (f"it is in fold(s) {elsewhere}; pick one with select_fold" if elsewhere
                     else "no fold of this run holds it (only ambiguous training samples are stored)")
            raise SerError(f"sample {sample_id!r} is not in fold {self._fold}'s label store: {where}")
        if sample_id not in self.options:
            raise SerError(f"sample {sample_id!r} is hidden by the current filter {self._filter}; "
                           "clear it with set_filter()")
        self._show_sample(sample_id)

    def set_epoch(self, epoch: int) -> None:
        if epoch not in self.epochs:
            raise SerError(f"fold {self._fold} has no epoch {epoch!r}; its label store holds epochs "
                           f"{_span(self.epochs)}")
        self._epoch = int(epoch)
        with self._sync():
            self.epoch_slider.value = self._epoch
        self._render_bars()

    # ------------------------------------------------------------------ numbers and figures

    def current_bars(self) -> dict[str, np.ndarray]:
        """The distributions plotted for the current sample and epoch, each [K]: "observed" (y_s),
        "corrected" (mean y_c of the epoch), "predicted" (mean y_g of the epoch) and "true" when
        known. A label not recorded in that epoch is left out."""
        if self._sample is None:
            raise SerError(f"no sample selected: fold {self._fold} has no sample matching {self._filter}")
        store, sample = self.store, self._sample
        bars = {"observed": store.observed(sample)}
        if self._epoch is not None:
            row = self.epochs.index(self._epoch)
            for kind in ("corrected", "predicted"):
                values = store.history(sample, kind)[row]
                if np.isfinite(values).all():
                    bars[kind] = values
        truth = store.true(sample)
        if np.isfinite(truth).all():
            bars["true"] = truth
        return bars

    def bar_figure(self) -> Figure:
        """Grouped bars of `current_bars` next to the sample's corrected label over all epochs."""
        bars = self.current_bars() if self._sample is not None else {}
        figure = plt.figure(figsize=(9.5, 3.2), layout="constrained")
        bars_ax, history_ax = figure.subplots(1, 2, width_ratios=(1.1, 1))
        if not bars:
            bars_ax.text(0.5, 0.5, "no sample matches the filter", ha="center", va="center")
            return figure
        x = np.arange(len(self.classes))
        width = 0.8 / len(bars)
        for i, (name, values) in enumerate(bars.items()):
            bars_ax.bar(x + (i - (len(bars) - 1) / 2) * width, values, width, label=name, color=BAR_COLORS[name])
        bars_ax.set_xticks(x, self.classes)
        bars_ax.set(ylim=(0, 1), ylabel="probability", title=f"{self._sample} · epoch {self._epoch}")
        bars_ax.legend(fontsize="small")

        history = self.store.history(self._sample, "corrected")
        for k, name in enumerate(self.classes):
            history_ax.plot(self.epochs, history[:, k], marker="o", markersize=3, color=f"C{k}", label=name)
            history_ax.axhline(bars["observed"][k], color=f"C{k}", lw=0.8, ls="--")
        if self._epoch is not None:
            history_ax.axvline(self._epoch, color="k", lw=0.8, ls=":")
        history_ax.set(ylim=(0, 1), xlabel="epoch", title="corrected label y_c (dashed: y_s)")
        history_ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        history_ax.legend(fontsize="small", ncol=2)
        return figure

    def segment_waveform(self, sample_id: str | None = None) -> np.ndarray:
        """The real (unpadded) samples of a segment, cut exactly as for training (§V-C)."""
        sample_id = sample_id or self._sample
        if sample_id is None:
            raise SerError("no sample selected")
        if self._manifest is None:
            raise SerError("no manifest given: the explorer cannot find the audio")
        utt_id, index = split_sample_id(sample_id)
        if utt_id not in self._manifest.index:
            raise ManifestError(f"utterance {utt_id!r} of sample {sample_id!r} is not in the manifest "
                                f"{self._manifest.attrs.get('source', '')}")
        data = self.config.data
        row = self._manifest.loc[utt_id].to_dict()
        waveform = load_utterance(row, self._manifest.attrs["root"], data)
        segments = cut_and_pad(waveform, data.sample_rate, data.max_segment_s, data.min_segment_s, data.segmentation)
        if index >= len(segments):
            raise SerError(f"sample {sample_id!r}: utterance {utt_id!r} has only {len(segments)} segment(s) with "
                           f"data.max_segment_s={data.max_segment_s}; was the run trained with another config?")
        segment = segments[index]
        return segment.waveform[: segment.num_valid_samples].numpy()

    def wav_bytes(self, sample_id: str | None = None) -> bytes:
        """The segment as a 16-bit PCM WAV file in memory (for `ipywidgets.Audio`)."""
        buffer = io.BytesIO()
        soundfile.write(buffer, self.segment_waveform(sample_id), self.config.data.sample_rate,
                        format="WAV", subtype="PCM_16")
        return buffer.getvalue()

    def spectrogram_figure(self, sample_id: str | None = None) -> Figure:
        """The segment's log-mel filterbank, as the spatial branch sees it (§V-C)."""
        sample_id = sample_id or self._sample
        waveform = self.segment_waveform(sample_id)
        features = fbank(torch.from_numpy(waveform), self.config.features, self.config.data.sample_rate).numpy()
        figure = plt.figure(figsize=(5, 2.6), layout="constrained")
        ax = figure.subplots()
        seconds = features.shape[0] * self.config.features.frame_shift_ms / 1000
        image = ax.imshow(features.T, origin="lower", aspect="auto", cmap="magma",
                          extent=(0, seconds, 0, features.shape[1]))
        figure.colorbar(image, ax=ax, label="log energy")
        ax.set(xlabel="s", ylabel="mel bin", title=f"log-mel filterbank of {sample_id}")
        return figure

    # ------------------------------------------------------------------ widgets

    @property
    def widget(self) -> widgets.VBox:
        """The whole explorer, for `display`."""
        return self._widget

    def _build_controls(self) -> None:
        style = {"description_width": "initial"}
        self.fold_dropdown = widgets.Dropdown(options=self.folds, description="fold (test speaker)", style=style)
        self.class_dropdown = widgets.Dropdown(options=[ANY, *self.classes], description="class of y_s", style=style)
        subsets = self._subsets()
        self.subset_dropdown = widgets.Dropdown(options=[ANY, *subsets], description="subset", style=style,
                                                disabled=len(subsets) < 2)
        self.drift_slider = widgets.FloatRangeSlider(min=0.0, max=1.0, step=0.005, value=(0.0, 1.0),
                                                     description="drift JS(y_s, last y_c), bits", readout_format=".3f",
                                                     style=style, layout=widgets.Layout(width="420px"))
        self.order_toggle = widgets.ToggleButtons(options=[("largest drift first", "drift"), ("by id", "id")],
                                                  value="drift")
        self.sample_dropdown = widgets.Dropdown(options=[], description="sample", style=style,
                                                layout=widgets.Layout(width="520px"))
        self.epoch_slider = widgets.IntSlider(min=0, max=0, description="epoch", continuous_update=False)
        self.info = widgets.HTML()
        self.bars_output = widgets.Output()
        self.audio = widgets.Audio(format="wav", autoplay=False, loop=False)
        self.spectrogram_output = widgets.Output()

        self.fold_dropdown.observe(lambda change: self._on_user(self.select_fold, change["new"]), names="value")
        for control in (self.class_dropdown, self.subset_dropdown, self.drift_slider, self.order_toggle):
            control.observe(lambda change: self._on_user(self._filter_from_controls), names="value")
        self.sample_dropdown.observe(lambda change: change["new"] is not None
                                     and self._on_user(self.select, change["new"]), names="value")
        self.epoch_slider.observe(lambda change: self._on_user(self._snap_epoch, change["new"]), names="value")

        self._widget = widgets.VBox([
            widgets.HBox([self.fold_dropdown, self.class_dropdown, self.subset_dropdown]),
            widgets.HBox([self.drift_slider, self.order_toggle]),
            self.sample_dropdown,
            self.epoch_slider,
            self.info,
            widgets.HBox([self.bars_output, widgets.VBox([self.audio, self.spectrogram_output])]),
        ])

    def _on_user(self, action, *args) -> None:
        """A control changed: act on it, unless the change came from the explorer itself."""
        if not self._syncing:
            action(*args)

    def _filter_from_controls(self) -> None:
        low, high = self.drift_slider.value
        top = self.drift_slider.max
        self.set_filter(cls=self.class_dropdown.value, subset=self.subset_dropdown.value,
                        min_drift=low if low > 0 else 0.0, max_drift=None if high >= top else high,
                        order=self.order_toggle.value)

    def _snap_epoch(self, value: int) -> None:
        """The slider is integer-valued; a gap between recorded epochs snaps to the nearest one."""
        if self.epochs:
            self.set_epoch(min(self.epochs, key=lambda e: (abs(e - value), e)))

    @contextmanager
    def _sync(self):
        previous, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = previous

    def _refresh_options(self) -> None:
        options = self.options
        drift = self._tables[self._fold].set_index("id")["drift"]
        cls = self._tables[self._fold].set_index("id")["class"]
        with self._sync():
            self.sample_dropdown.options = [(f"{i}  ({cls[i]}, drift {drift[i]:.4f} bits)", i) for i in options]
            self.sample_dropdown.value = None
        keep = self._sample if self._sample in options else (options[0] if options else None)
        self._show_sample(keep)

    def _show_sample(self, sample_id: str | None) -> None:
        self._sample = sample_id
        with self._sync():
            self.sample_dropdown.value = sample_id
        self._render_info()
        self._render_bars()
        if sample_id != self._audio_sample:
            self._render_audio()

    def _render_info(self) -> None:
        table = self._tables[self._fold]
        if self._sample is None:
            total = len(table)
            reason = ("this fold has no ambiguous training samples" if total == 0
                      else f"none of its {total} samples matches the filter")
            self.info.value = f"<b>fold {html.escape(self._fold)}</b>: {reason}"
            return
        row = table.set_index("id").loc[self._sample]
        parts = [f"<b>{html.escape(self._sample)}</b>", f"subset {html.escape(str(row['subset']) or '?')}",
                 f"y_s argmax <b>{row['class']}</b>", f"last y_c argmax <b>{row['corrected_class']}</b>",
                 f"drift {row['drift']:.4f} bits"]
        if isinstance(row["true_class"], str):
            parts += [f"true argmax <b>{row['true_class']}</b>",
                      f"JS to truth: y_s {row['js_observed_to_true']:.4f} → "
                      f"last y_c {row['js_corrected_to_true']:.4f}"]
        parts.append(f"in the training set of {len(self.folds_of(self._sample))} of {len(self.folds)} fold(s)")
        self.info.value = " · ".join(parts)

    def _render_bars(self) -> None:
        _show_figure(self.bars_output, self.bar_figure(), dpi=80)

    def _render_audio(self) -> None:
        self._audio_sample = self._sample
        self.audio_error = None
        if self._sample is None:
            self.audio.value = b""
            _show_text(self.spectrogram_output, "")
            return
        try:
            self.audio.value = self.wav_bytes()
            _show_figure(self.spectrogram_output, self.spectrogram_figure(), dpi=80)
        except SerError as exc:  # shown where the audio would be, not lost in a callback
            self.audio.value = b""
            self.audio_error = str(exc)
            _show_text(self.spectrogram_output, f"no audio: {exc}")

    # ------------------------------------------------------------------ helpers

    def _check_fold(self, fold: str) -> str:
        if fold not in self._stores:
            raise SerError(f"no fold {fold!r} in this run; folds: {self.folds}")
        return fold

    def _subsets(self) -> list[str]:
        return sorted({s for table in self._tables.values() for s in table["subset"] if s})


def _sample_table(store: LabelStore) -> pd.DataFrame:
    """The explorer's per-sample summary of one store (see `LabelDriftExplorer.table`)."""
    classes = np.array(store.classes, dtype=object)
    ids = store.ids
    columns = ["id", "subset", "class", "drift", "corrected_class", "true_class", "js_observed_to_true",
               "js_corrected_to_true"]
    if not ids:
        return pd.DataFrame({name: pd.Series(dtype=float if name.startswith(("drift", "js")) else object)
                             for name in columns})
    observed = np.array([store.observed(i) for i in ids])
    last = np.full_like(observed, np.nan)
    final = store.final("corrected")
    last[[ids.index(i) for i in final.index]] = final.to_numpy()
    truth = np.array([store.true(i) for i in ids])
    recorded = np.isfinite(last).all(axis=1)
    known = np.isfinite(truth).all(axis=1)
    drift = np.full(len(ids), np.nan)
    drift[recorded] = js_divergence(observed[recorded], last[recorded])
    observed_to_true = np.full(len(ids), np.nan)
    observed_to_true[known] = js_divergence(observed[known], truth[known])
    corrected_to_true = np.full(len(ids), np.nan)
    both = known & recorded
    corrected_to_true[both] = js_divergence(last[both], truth[both])
    argmax = lambda values, valid: np.where(valid, classes[np.nan_to_num(values).argmax(axis=1)], None)  # noqa: E731
    return pd.DataFrame({
        "id": ids, "subset": [store.subset(i) for i in ids], "class": classes[observed.argmax(axis=1)],
        "drift": drift, "corrected_class": argmax(last, recorded), "true_class": argmax(truth, known),
        "js_observed_to_true": observed_to_true, "js_corrected_to_true": corrected_to_true,
    }, columns=columns)


def _show_figure(output: widgets.Output, figure: Figure, dpi: int = 80) -> None:
    """Replace an Output's content with a PNG of `figure`, and close it (works without a kernel)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                                "text/plain": "<Figure>"}},)


def _show_text(output: widgets.Output, text: str) -> None:
    output.outputs = ({"output_type": "stream", "name": "stdout", "text": text + "\n"},) if text else ()


def _span(epochs: list[int]) -> str:
    return f"{epochs[0]}..{epochs[-1]}" if epochs else "none (nothing was recorded)"


# ---------------------------------------------------------------------- aggregate view


def plot_drift_comparison(run_dirs: Mapping[str, str | Path]) -> Figure | None:
    """Mean JS divergence to the true distributions over epochs, one line per run (e.g. correction
    on and off): of the corrected labels y_c (left) and of the predictions y_g (right).
    None when no run knows the true distributions (real corpora)."""
    corrected = {name: label_drift_curve(path) for name, path in run_dirs.items()}
    predicted = {name: label_drift_curve(path, "predicted") for name, path in run_dirs.items()}
    if not any(corrected.values()):
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
    plot_label_drift({n: c for n, c in corrected.items() if c}, ax=left)
    left.set_title("corrected labels y_c (epoch -1: observed y_s)")
    plot_label_drift({n: c for n, c in predicted.items() if c}, ax=right)
    right.set_title("predictions y_g (epoch -1: observed y_s)")
    return figure
