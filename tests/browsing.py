"""What the browser tests share: Debian's Chromium driven by Playwright, the PNG an Output widget
shows, and a page that refuses every request leaving the machine.

Playwright's own browser download cannot work offline: the tests use /usr/lib/chromium/chromium
(`apt-get install chromium`; `.ci/run` installs it). Without it they are skipped locally and fail
when CI=true."""

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


def refuse_outside(page, local_prefix: str) -> list[str]:
    """Refuse every request not to `local_prefix`; the returned list fills with their URLs."""
    refused = []

    def route(request_route):
        if request_route.request.url.startswith(local_prefix):
            request_route.continue_()
        else:
            refused.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    return refused
