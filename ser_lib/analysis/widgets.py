"""The label-drift explorer (eq. 6) for notebook 04 and the dashboard: a thin ipywidgets controller.

For one fold, sample and epoch it shows the ambiguous sample's observed label y_s, the epoch's
mean corrected label y_c and prediction y_g, the truth where known, and the segment's audio and
log-mel filterbank. The numbers come from `analysis.drift`, the figures from `analysis.plots`
(thread-safe `Figure` objects) and the audio from `data.samples.segment_inputs`; this module
holds only the state (fold, filter, sample, epoch) and the widget wiring.

Every action is a plain method (`select_fold`, `set_filter`, `select`, `set_epoch`), so tests
drive it from Python; the controls only call them. Figures are shown as PNG display data in
`Output`s, drawn once per change.
"""

from __future__ import annotations

import base64
import html
import io
import math
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import ipywidgets as widgets
import numpy as np
import pandas as pd
import soundfile
from matplotlib.figure import Figure

from ..config import Config
from ..data.inputs import SegmentInputs
from ..data.manifest import read_manifest
from ..data.samples import segment_inputs
from ..errors import ManifestError, SerError
from .label_history import LabelHistory
from . import drift, plots, runs
from .drift import DriftFilter

ANY = "any"
DPI = 110  # sharp on a projector, small enough to redraw at every slider step


class LabelDriftExplorer:
    """Per-sample view of y_s, y_c, y_g and the truth over the epochs of one fold at a time."""

    def __init__(self, stores: Mapping[str, LabelHistory], manifest: pd.DataFrame | None = None,
                 config: Config | None = None):
        """`stores`: fold name -> label store (see `runs.label_histories`); `manifest`: a frame from
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
            self._manifest = manifest
        self._tables = {fold: drift.sample_table(store) for fold, store in self._stores.items()}

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
        """An explorer of a run folder; `manifest` (path or frame) gives the audio and defaults to
        the one the run was trained on, where recorded; `config` defaults to the run's ``config.json``."""
        if manifest is None:
            manifest = runs.recorded_manifest(run_dir)
        if isinstance(manifest, (str, Path)):
            manifest = read_manifest(manifest)
        return cls(runs.label_histories(run_dir), manifest, config if config is not None else runs.read_config(run_dir))

    # ------------------------------------------------------------------ state

    @property
    def folds(self) -> list[str]:
        return list(self._stores)

    @property
    def fold(self) -> str:
        return self._fold

    @property
    def store(self) -> LabelHistory:
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
        return drift.filter_samples(self._tables[self._fold], self._filter)

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
        max_drift = math.inf if max_drift is None else float(max_drift)
        self._filter = DriftFilter(cls, subset, float(min_drift), max_drift, order).check(self.classes, self._subsets())
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
        """The distributions plotted for the current sample and epoch (`drift.sample_labels`)."""
        if self._sample is None:
            raise SerError(f"no sample selected: fold {self._fold} has no sample matching {self._filter}")
        return drift.sample_labels(self.store, self._sample, self._epoch)

    def bar_figure(self) -> Figure:
        """Grouped bars of `current_bars` next to the sample's corrected label over all epochs."""
        if self._sample is None:
            return plots.plot_sample_labels({}, self.classes, np.zeros((0, len(self.classes))), [], None, "")
        return plots.plot_sample_labels(self.current_bars(), self.classes, self.store.history(self._sample),
                                        self.epochs, self._epoch, f"{self._sample} · epoch {self._epoch}")

    def segment(self, sample_id: str | None = None) -> SegmentInputs:
        """The segment's model inputs, re-read from its audio exactly as for training (§V-C)."""
        sample_id = sample_id or self._sample
        if sample_id is None:
            raise SerError("no sample selected")
        if self._manifest is None:
            raise SerError("no manifest given and none recorded in the run folder: the explorer cannot find the audio")
        return segment_inputs(sample_id, self._manifest, self.config.data, self.config.features)

    def wav_bytes(self, sample_id: str | None = None) -> bytes:
        """The segment's real (unpadded) audio as a 16-bit PCM WAV file in memory."""
        segment = self.segment(sample_id)
        buffer = io.BytesIO()
        soundfile.write(buffer, segment.waveform[: segment.num_valid_samples].numpy(), self.config.data.sample_rate,
                        format="WAV", subtype="PCM_16")
        return buffer.getvalue()

    def spectrogram_figure(self, sample_id: str | None = None) -> Figure:
        """The segment's log-mel filterbank over its real audio, as the spatial branch sees it."""
        sample_id = sample_id or self._sample
        segment = self.segment(sample_id)
        ax = plots.plot_filterbank(segment.fbank[: segment.num_valid_frames].numpy(),
                                   self.config.features.frame_shift_ms, f"log-mel filterbank of {sample_id}")
        return ax.figure

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
                                                  value="drift", layout=widgets.Layout(margin="0 0 0 32px"))
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

        # CSS classes name the controls for browser tests and custom styling.
        for control, name in ((self.fold_dropdown, "fold"), (self.sample_dropdown, "sample"),
                              (self.epoch_slider, "epoch"), (self.bars_output, "bars"),
                              (self.spectrogram_output, "spectrogram"), (self.class_dropdown, "class")):
            control.add_class(f"ser-explorer-{name}")
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
        show_figure(self.bars_output, self.bar_figure())

    def _render_audio(self) -> None:
        self._audio_sample = self._sample
        self.audio_error = None
        if self._sample is None:
            self.audio.value = b""
            _show_text(self.spectrogram_output, "")
            return
        try:
            self.audio.value = self.wav_bytes()
            show_figure(self.spectrogram_output, self.spectrogram_figure())
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


def show_figure(output: widgets.Output, figure: Figure | None) -> None:
    """Replace an Output's content with a PNG of `figure` (works without a kernel); None clears it."""
    if figure is None:
        output.outputs = ()
        return
    png = plots.png_bytes(figure, dpi=DPI)
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<Figure>"}},)


def _show_text(output: widgets.Output, text: str) -> None:
    output.outputs = ({"output_type": "stream", "name": "stdout", "text": text + "\n"},) if text else ()


def _span(epochs: list[int]) -> str:
    return f"{epochs[0]}..{epochs[-1]}" if epochs else "none (nothing was recorded)"
