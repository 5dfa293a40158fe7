"""The dashboard and notebook 04 in a real browser: Playwright drives Debian's Chromium.

`ser dashboard` serves a tiny two-fold run (and its no-correction twin, so the run picker has a
choice); the test changes the run, the fold of the learning curves, and in the label-drift
explorer the fold, the sample and the epoch, and checks each time that the figure it drives
changed and is not blank. The same explorer is then driven in JupyterLab, in notebook 04 run
with "Run All Cells" on the same runs. The browser: `browsing.py`."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browsing import assert_not_blank, chromium, png_of, refuse_outside  # noqa: F401 (chromium: a fixture)
from conftest import ROOT
from ser_lib.config import load_config
from ser_lib.method.presets import apply_preset
from ser_lib.train.loso import run_loso


def quick_overrides(root: Path) -> dict:
    return {"train.batch_size": 4, "train.stage1_max_epochs": 1, "train.max_epochs": 3, "train.patience": 10,
            "model.conv_channels": "8,8,8,8,8", "model.fusion_dims": "16,16,16", "model.classifier_hidden": 8,
            "cache_dir": str(root / "cache")}


@pytest.fixture(scope="module")
def run_folder(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = load_config("demo", overrides={**quick_overrides(root), "eval.folds": "S1F,S1M"})
    run_loso(config, tiny_corpus, root / "demo" / "paper", progress=False)
    run_loso(apply_preset(config, "soft-static"), tiny_corpus, root / "demo" / "soft-static", progress=False)
    return root / "demo"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def dashboard_url(run_folder):
    port = free_port()
    # No --manifest: the explorer finds the audio through the manifest each run recorded.
    server = subprocess.Popen([sys.executable, "-m", "ser_lib.cli", "dashboard", str(run_folder), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_line = server.stdout.readline()
    assert f"http://127.0.0.1:{port}/" in first_line, first_line
    wait_for_port(port)  # the URL is printed before Voilà listens
    yield f"http://127.0.0.1:{port}/"
    server.terminate()
    server.wait(timeout=30)
    wait_for_port_free(port)  # `ser dashboard` passes the signal on: no Voilà is left serving


def wait_for_port_free(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"something still listens on port {port} {timeout_s:.0f} s after the dashboard was stopped")


def changed(page, selector: str, before: bytes, timeout_s: float = 90.0) -> bytes:
    """Wait until the figure under `selector` differs from `before`; return it, checked not blank.
    The bound is generous: a loaded CI machine redraws the spectrogram (features from audio) slowly."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = png_of(page, selector)
        if now != before:
            assert_not_blank(now)
            return now
        time.sleep(0.25)
    raise AssertionError(f"{selector} did not change")


@pytest.mark.slow
def test_dashboard_controls_redraw_their_figures(chromium, dashboard_url):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    refused = refuse_outside(page, dashboard_url.rstrip("/"))  # (the kernel's WebSocket is not routed)
    started = time.monotonic()
    page.goto(dashboard_url, timeout=120_000)

    confusion = png_of(page, ".ser-dashboard-confusion")
    curves = png_of(page, ".ser-dashboard-curves")
    assert_not_blank(confusion)
    assert_not_blank(curves)

    page.locator(".ser-dashboard-fold select").select_option("S1M")  # learning curves of the other fold
    curves = changed(page, ".ser-dashboard-curves", curves)

    page.locator(".ser-dashboard-run select").select_option(label="soft-static")  # the other run
    confusion = changed(page, ".ser-dashboard-confusion", confusion)

    page.get_by_text("label drift", exact=True).click()
    # The explorer is rebuilt after the confusion is drawn: wait for the new run's, not the old one's.
    page.locator(".ser-dashboard-explorer-title", has_text="soft-static").wait_for(timeout=90_000)
    drive_explorer(page)
    assert not refused, f"the dashboard asked for {refused}"  # e.g. Voilà's Font Awesome from a CDN
    print(f"dashboard: {time.monotonic() - started:.1f} s in the page")


TOKEN = "browser-test"


def start_lab(lab_dir: Path) -> tuple[str, subprocess.Popen]:
    """JupyterLab on `lab_dir` with this test's own settings: every cell rendered (no windowing, so
    the explorer stays in the page while later cells run) and no news pop-up over the notebook."""
    settings = lab_dir.parent / f"{lab_dir.name}-settings"
    for extension, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                              "apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / "@jupyterlab" / f"{extension}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={lab_dir}",
                               *(["--allow-root"] if os.geteuid() == 0 else [])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=lab_dir,
                              env={**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings)})
    wait_for_port(port)
    return f"http://127.0.0.1:{port}", server


def drive_explorer(page) -> None:
    """Sample, epoch (typed) and fold of the label-drift explorer, each redrawing its figures."""
    bars = png_of(page, ".ser-explorer-bars")
    assert_not_blank(bars)
    spectrogram = png_of(page, ".ser-explorer-spectrogram")
    assert_not_blank(spectrogram)
    sample = page.locator(".ser-explorer-sample select")
    sample.locator("option").nth(1).wait_for(state="attached", timeout=60_000)  # filled by the kernel
    sample.select_option(index=1)  # another sample: its labels and its spectrogram
    bars = changed(page, ".ser-explorer-bars", bars)
    changed(page, ".ser-explorer-spectrogram", spectrogram)
    readout = page.locator(".ser-explorer-epoch .widget-readout")
    readout.fill("0")  # the first epoch, typed
    readout.press("Enter")
    bars = changed(page, ".ser-explorer-bars", bars)
    page.locator(".ser-explorer-fold select").select_option("S1M")  # the other fold's label store
    changed(page, ".ser-explorer-bars", bars)


@pytest.fixture(scope="module")
def lab_url(run_folder, tiny_corpus, tmp_path_factory):
    """JupyterLab on a folder holding notebook 04 with its parameters set to the tiny runs."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    lab_dir = tmp_path_factory.mktemp("lab")
    notebook = load_notebook_node(str(ROOT / "notebooks" / "04_label_drift.ipynb"))
    parameters = {"corpus": str(tiny_corpus), "runs_dir": str(run_folder), "num_folds": 2,
                  "overrides": quick_overrides(run_folder.parent)}
    nbformat.write(parameterize_notebook(notebook, parameters), lab_dir / "04.ipynb")
    url, server = start_lab(lab_dir)
    yield f"{url}/lab/tree/04.ipynb?token={TOKEN}"
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def committed_lab_url(tmp_path_factory):
    """JupyterLab on a trusted copy of the committed notebook 04, as `make lab` serves it."""
    lab_dir = tmp_path_factory.mktemp("committed")
    notebook = lab_dir / "04.ipynb"
    notebook.write_bytes((ROOT / "notebooks" / "04_label_drift.ipynb").read_bytes())
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(notebook)], check=True, capture_output=True)
    url, server = start_lab(lab_dir)
    yield f"{url}/lab/tree/04.ipynb?token={TOKEN}"
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
def test_committed_notebook_04_shows_its_saved_widgets_without_running(chromium, committed_lab_url):
    """Widget state survives a reopen: the explorer's figures come from the notebook file alone."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(committed_lab_url, timeout=120_000)
    assert_not_blank(png_of(page, ".ser-explorer-bars"))
    assert_not_blank(png_of(page, ".ser-explorer-spectrogram"))
    assert page.get_by_text("model not found").count() == 0


@pytest.mark.slow
def test_notebook_04_explorer_in_jupyterlab(chromium, lab_url, tmp_path):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    started = time.monotonic()
    page.goto(lab_url, timeout=120_000)
    page.locator(".jp-Notebook").wait_for(timeout=120_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)  # the kernel is up
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.get_by_text("Run All Cells", exact=True).click()
    try:
        drive_explorer(page)
    except Exception:
        page.screenshot(path=str(tmp_path / "jupyterlab.png"), full_page=True)
        print(f"screenshot of the failure: {tmp_path / 'jupyterlab.png'}")
        raise
    print(f"JupyterLab: {time.monotonic() - started:.1f} s from opening the notebook")


@pytest.mark.slow
def test_html_export_of_notebook_04_renders_its_widgets_offline(chromium, tmp_path):
    """`ser export-html`: the committed notebook 04 as one page; with every network request
    refused, the explorer's controls and figures still render from the inlined renderer, and the
    equations are typeset by the MathJax copied beside the page."""
    page_path = tmp_path / "04_label_drift.html"
    subprocess.run([sys.executable, "-m", "ser_lib.cli", "export-html", str(ROOT / "notebooks" / "04_label_drift.ipynb"),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    requested = []
    page.route("http*://**", lambda route: (requested.append(route.request.url), route.abort()))
    started = time.monotonic()
    page.goto(page_path.as_uri(), timeout=60_000)
    assert_not_blank(png_of(page, ".ser-explorer-bars"))
    assert_not_blank(png_of(page, ".ser-explorer-spectrogram"))
    assert page.locator(".ser-explorer-sample select option").count() > 1  # the saved choices
    assert page.locator(".ser-explorer-epoch .widget-readout").count() == 1
    page.locator(".MathJax").first.wait_for(timeout=60_000)  # MathJax's output, not "$y_s$" text
    assert not requested, requested
    print(f"HTML export: {time.monotonic() - started:.1f} s from opening the page to its figures")
