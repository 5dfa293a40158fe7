"""`ser dashboard RUN_DIR`: a results view and the label-drift explorer of a run, served by Voilà.

The folder is a run (``config.json`` and at least one finished fold) or a folder of runs, such
as a sweep: a drop-down then picks the run. For the chosen run the dashboard shows the per-fold
table (WA, UA, macro-F1, best epochs), the confusion matrix summed over folds, the learning curves
of a chosen fold, and the label-drift explorer (`widgets.LabelDriftExplorer`) when the run has
label histories. Every figure is a `matplotlib.figure.Figure` rendered to PNG, so callbacks on
any thread draw correctly. `serve` starts Voilà on the bundled notebook ``dashboard.ipynb``,
offline (Voilà serves its own widget JavaScript) and on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..errors import SerError
from . import plots, runs
from .widgets import LabelDriftExplorer, show_figure

NOTEBOOK = Path(__file__).with_name("dashboard.ipynb")
# Voilà's lab template without its Font Awesome CDN links (static/jupyter/voila/templates/ser-offline),
# found by Voilà through JUPYTER_PATH.
TEMPLATE_PATH = Path(__file__).parent / "static" / "jupyter"
TEMPLATE = "ser-offline"
RUN_ENV, MANIFEST_ENV = "SER_DASHBOARD_RUN", "SER_DASHBOARD_MANIFEST"
TABLE_COLUMNS = {"speaker": "test speaker", "wa": "WA (%)", "ua": "UA (%)", "macro_f1": "macro-F1 (%)"}


def find_runs(folder: str | Path) -> list[Path]:
    """The run folders in `folder`: itself when it is a run, else every run below it (a sweep)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SerError(f"{folder} is not a folder; pass a run folder (e.g. runs/demo) or a sweep folder")
    candidates = [folder] + sorted(p.parent for p in folder.rglob(runs.CONFIG_JSON) if p.parent != folder)
    found = [path for path in candidates if (path / runs.CONFIG_JSON).exists() and runs.fold_dirs(path)]
    if not found:
        raise SerError(f"{folder} holds no run: a run folder has {runs.CONFIG_JSON} and at least one finished "
                       f"{runs.FOLD_PREFIX}*/{runs.FOLD_RESULT} (train one with `ser loso` or `make demo`)")
    return found


def fold_table(run_dir: Path) -> pd.DataFrame:
    """One row per finished fold: the test metrics and the best epochs of both stages."""
    rows = []
    for record in runs.fold_records(run_dir):
        best = record.get("best_epoch") or {}
        rows.append({**{title: record.get(key) for key, title in TABLE_COLUMNS.items()},
                     "best epoch (stage 1, 2)": f"{best.get('stage1')}, {best.get('stage2')}"})
    table = pd.DataFrame(rows)
    means = {title: table[title].mean() for key, title in TABLE_COLUMNS.items() if key != "speaker"}
    return pd.concat([table, pd.DataFrame([{TABLE_COLUMNS["speaker"]: "mean", **means}])], ignore_index=True)


class Dashboard:
    """The widgets of the dashboard for the runs under `folder`."""

    def __init__(self, folder: str | Path, manifest: str | Path | None = None):
        self.folder = Path(folder)
        self.manifest = manifest
        self.runs = find_runs(self.folder)
        names = [(self.run_name(p), p) for p in self.runs]
        self.run_picker = widgets.Dropdown(options=names, description="run", layout=widgets.Layout(width="60%"))
        self.fold_picker = widgets.Dropdown(description="fold")
        self.table = widgets.HTML()
        self.confusion, self.curves = widgets.Output(), widgets.Output()
        self.explorer_box = widgets.VBox()
        self.explorer: LabelDriftExplorer | None = None
        self.title = ""  # the shown run and its setting, set by show_run
        results = widgets.VBox([self.table, widgets.HBox([self.confusion, widgets.VBox([self.fold_picker, self.curves])])])
        self.tabs = widgets.Tab(children=[results, self.explorer_box], titles=("results", "label drift"))
        for control, name in ((self.run_picker, "run"), (self.fold_picker, "fold"), (self.confusion, "confusion"),
                              (self.curves, "curves"), (self.tabs, "tabs")):
            control.add_class(f"ser-dashboard-{name}")
        self.run_picker.observe(lambda change: self.show_run(change["new"]), names="value")
        self.fold_picker.observe(lambda change: self.show_curves(change["new"]), names="value")
        self._widget = widgets.VBox([widgets.HTML(f"<b>folder</b> {self.folder}"), self.run_picker, self.tabs])
        self.show_run(self.runs[0])

    @property
    def widget(self) -> widgets.VBox:
        """The whole dashboard, for `display`."""
        return self._widget

    def run_name(self, run_dir: Path) -> str:
        """A run as the picker and the titles name it: its path inside the served folder."""
        return str(run_dir.relative_to(self.folder)) if run_dir != self.folder else run_dir.name

    def show_run(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        config = runs.read_config(run_dir)
        title = self.title = plots.run_title(self.run_name(run_dir), config)
        self.table.value = f"<b>{title}</b>" + fold_table(run_dir).to_html(index=False, float_format="%.2f", na_rep="")
        records = runs.fold_records(run_dir)
        confusion = np.sum([np.asarray(r["confusion"]) for r in records], axis=0)
        ax = plots.plot_confusion(confusion, list(config.data.classes))
        ax.set_title(f"{title}, {len(records)} fold(s)", fontsize="medium")
        show_figure(self.confusion, ax.figure)
        speakers = [r["speaker"] for r in records]
        self.fold_picker.options = speakers
        if self.fold_picker.value != speakers[0]:
            self.fold_picker.value = speakers[0]  # draws through the observer
        else:
            self.show_curves(speakers[0])
        self.show_explorer(run_dir)

    def show_explorer(self, run_dir: Path) -> None:
        """The label-drift tab of the run. Building it reads every fold's label store and takes a
        while, so the tab says so meanwhile; its heading names the run, so a reader (or a browser
        test) can tell the new explorer from the previous run's."""
        self.explorer = None
        if not runs.label_history_paths(run_dir):
            self.explorer_box.children = (widgets.HTML(f"no label histories in <b>{self.title}</b>"),)
            return
        self.explorer_box.children = (widgets.HTML(f"loading the label histories of <b>{self.title}</b> …"),)
        self.explorer = LabelDriftExplorer.from_run(run_dir, self.manifest)
        heading = widgets.HTML(f"label drift of <b>{self.title}</b>")
        heading.add_class("ser-dashboard-explorer-title")
        self.explorer_box.children = (heading, self.explorer.widget)

    def show_curves(self, speaker: str | None) -> None:
        if speaker is None:
            return
        record = runs.read_fold_record(runs.fold_dir(self.run_dir, speaker))
        if not record.get("history"):
            show_figure(self.curves, None)
            return
        ax = plots.plot_learning_curves(record["history"])
        ax.set_title(f"learning curves, fold {speaker}\n{self.title}", fontsize="medium")
        show_figure(self.curves, ax.figure)


def serve(folder: str | Path, manifest: str | Path | None = None, port: int = 8866, ip: str = "127.0.0.1",
          open_browser: bool = False) -> int:
    """Run Voilà on the dashboard notebook for `folder` until interrupted; returns its exit status."""
    folder = Path(folder).resolve()
    find_runs(folder)  # a clear error before a server starts
    jupyter_path = os.pathsep.join(filter(None, [str(TEMPLATE_PATH), os.environ.get("JUPYTER_PATH")]))
    env = {**os.environ, RUN_ENV: str(folder), MANIFEST_ENV: str(Path(manifest).resolve()) if manifest else "",
           "JUPYTER_PATH": jupyter_path}
    command = [sys.executable, "-m", "voila", str(NOTEBOOK), f"--port={port}", f"--Voila.ip={ip}",
               f"--template={TEMPLATE}", "--theme=light", "--show_tracebacks=True",
               *([] if open_browser else ["--no-browser"])]
    print(f"ser dashboard: serving {folder} at http://{ip}:{port}/ (Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(command, env=env)
    # Ctrl-C reaches Voilà itself (same process group); a plain `kill` of this process would not,
    # and would leave Voilà and its kernel serving without us: pass it on.
    signal.signal(signal.SIGTERM, lambda signum, frame: server.terminate())
    try:
        return server.wait()
    except KeyboardInterrupt:
        return server.wait()
