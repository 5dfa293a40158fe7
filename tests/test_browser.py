"""The dashboard in a real browser: Playwright drives Debian's Chromium.

`ser dashboard` serves a tiny two-fold run (and its no-correction twin, so the run picker has a
choice); the test changes the run, the fold of the learning curves, and in the label-drift
explorer the fold, the sample and the epoch, and checks each time that the figure it drives
changed and is not blank. Playwright's own browser download cannot work offline: the test uses
/usr/lib/chromium/chromium (`apt-get install chromium`; `.ci/run` installs it). Without it the
test is skipped locally and fails when CI=true."""

import base64
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ser_lib.config import load_config
from ser_lib.method.presets import apply_preset
from ser_lib.train.loso import run_loso

CHROMIUM = Path("/usr/lib/chromium/chromium")


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def run_folder(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    quick = {"train.batch_size": 4, "train.stage1_max_epochs": 1, "train.max_epochs": 3, "train.patience": 10,
             "model.conv_channels": "8,8,8,8,8", "model.fusion_dims": "16,16,16", "model.classifier_hidden": 8,
             "cache_dir": str(root / "cache"), "eval.folds": "S1F,S2M"}
    config = load_config("demo", overrides=quick)
    run_loso(config, tiny_corpus, root / "demo" / "paper", progress=False)
    run_loso(apply_preset(config, "soft-static"), tiny_corpus, root / "demo" / "soft-static", progress=False)
    return root / "demo"


@pytest.fixture(scope="module")
def dashboard_url(run_folder, tiny_corpus):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ser_lib.cli", "dashboard", str(run_folder), "--port", str(port),
                               "--manifest", str(tiny_corpus)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_line = server.stdout.readline()
    assert f"http://127.0.0.1:{port}/" in first_line, first_line
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the URL is printed before Voilà listens
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/"
    server.terminate()
    server.wait(timeout=30)


def png_of(page, selector: str) -> bytes:
    """The PNG an Output widget shows, after waiting for it."""
    image = page.locator(f"{selector} img").first
    image.wait_for(timeout=60_000)
    src = image.get_attribute("src")
    assert src.startswith("data:image/png;base64,"), src[:40]
    return base64.b64decode(src.split(",", 1)[1])


def assert_not_blank(png: bytes) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    assert pixels.std() > 5.0, "the figure is blank"


def changed(page, selector: str, before: bytes, timeout_s: float = 30.0) -> bytes:
    """Wait until the figure under `selector` differs from `before`; return it, checked not blank."""
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
    started = time.monotonic()
    page.goto(dashboard_url, timeout=120_000)

    confusion = png_of(page, ".ser-dashboard-confusion")
    curves = png_of(page, ".ser-dashboard-curves")
    assert_not_blank(confusion)
    assert_not_blank(curves)

    page.locator(".ser-dashboard-fold select").select_option("S2M")  # learning curves of the other fold
    curves = changed(page, ".ser-dashboard-curves", curves)

    page.locator(".ser-dashboard-run select").select_option(label="soft-static")  # the other run
    confusion = changed(page, ".ser-dashboard-confusion", confusion)

    page.get_by_text("label drift", exact=True).click()
    bars = png_of(page, ".ser-explorer-bars")
    assert_not_blank(bars)
    spectrogram = png_of(page, ".ser-explorer-spectrogram")
    assert_not_blank(spectrogram)

    sample = page.locator(".ser-explorer-sample select")
    options = sample.locator("option").all_inner_texts()
    assert len(options) > 1
    sample.select_option(index=1)  # another sample: its labels and its spectrogram
    bars = changed(page, ".ser-explorer-bars", bars)
    changed(page, ".ser-explorer-spectrogram", spectrogram)

    page.locator(".ser-explorer-epoch .widget-readout").fill("0")  # the first epoch, typed
    page.locator(".ser-explorer-epoch .widget-readout").press("Enter")
    bars = changed(page, ".ser-explorer-bars", bars)

    page.locator(".ser-explorer-fold select").select_option("S2M")  # the other fold's label store
    changed(page, ".ser-explorer-bars", bars)
    print(f"browser test: {time.monotonic() - started:.1f} s in the page")
