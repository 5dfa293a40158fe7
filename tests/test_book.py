"""The course book: `make book`'s Sphinx build passes in nitpicky, warnings-as-errors mode (a broken
link or a missing figure fails it), and the site reads offline in a real browser: equations
typeset, a figure loaded, notebook 04's explorer drawn from its saved state, the search finding
"inter-class", and no request leaving the machine."""

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from browsing import assert_not_blank, chromium, png_of, refuse_outside  # noqa: F401 (chromium: a fixture)
from conftest import ROOT

MAKEFILE_OPTS = re.search(r"^SPHINX_OPTS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess:
    """The build `make book` runs, with its options read from the Makefile."""
    return subprocess.run([sys.executable, "-m", "sphinx", *MAKEFILE_OPTS, str(source), str(out)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    result = sphinx_build(ROOT / "book", out)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request in the test output
        pass


@pytest.fixture(scope="module")
def site(book):
    """The built book served on localhost, as a reader's browser would load it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(book)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_every_notebook_and_part_is_in_the_book(book):
    for notebook in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        assert (book / "course" / f"{notebook.stem}.html").exists(), notebook.name
    for page in ("method/equations", "reproducing/tables", "reproducing/machines", "reference/cli",
                 "reference/config", "_generated/source/ser_lib.method.losses"):
        assert (book / f"{page}.html").exists(), page
    config_page = (book / "reference" / "config.html").read_text()
    assert "loss.ic_form" in config_page and "runtime.share_stage1" in config_page  # generated from the config
    assert "export-html" in (book / "reference" / "cli.html").read_text()  # generated from the parser


def test_a_reports_tables_in_a_notebook_output_are_tables(book):
    """Notebook 06 displays a sweep report as Markdown; its tables must render as tables, not as
    lines of pipes (MyST-NB's default CommonMark has no tables)."""
    page = (book / "course" / "06_reproducing_tables.html").read_text()
    assert "<th" in page and "| method / setting |" not in page
    assert re.search(r"<th[^>]*>\s*(<p>)?paper UA \(%\)", page), "the report's paper column is not a table header"


def test_a_broken_link_fails_the_build(tmp_path):
    """A copy of the book with one link to a page that does not exist must not build. The copy
    lies outside the repository, so it has no notebooks and no generated pages: a quick build,
    which fails for those too, hence the check that the broken link itself is named."""
    source = tmp_path / "book"
    shutil.copytree(ROOT / "book", source, ignore=shutil.ignore_patterns("*.ipynb", "_generated"))
    equations = source / "method" / "equations.md"
    equations.write_text(equations.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    result = sphinx_build(source, tmp_path / "out")
    assert result.returncode != 0
    assert "no-such-page" in result.stderr


@pytest.mark.slow
def test_the_book_reads_offline_in_a_browser(chromium, site):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    refused = refuse_outside(page, site)

    page.goto(f"{site}/method/equations.html")
    # Typeset: MathJax's output elements inside Sphinx's math spans, not "\(y_s\)" text.
    page.wait_for_function("document.querySelectorAll('span.math .MathJax, div.math .MathJax').length > 20",
                           timeout=60_000)

    page.goto(f"{site}/reproducing/tables.html")
    figure = page.locator("img[alt='UA per encoder and variant']")
    figure.scroll_into_view_if_needed()
    assert figure.evaluate("image => image.complete && image.naturalWidth > 0")

    page.goto(f"{site}/course/04_label_drift.html")
    assert_not_blank(png_of(page, ".ser-explorer-bars"))  # the explorer's saved state
    assert page.locator(".ser-explorer-sample select option").count() > 1

    page.goto(f"{site}/search.html?q=inter-class")
    # Sphinx lists results one by one and writes its summary ("Search finished, found ...") last.
    page.locator("#search-results .search-summary", has_text="found").wait_for(timeout=60_000)
    titles = page.locator("#search-results li > a").all_inner_texts()
    assert "The method, equation by equation" in titles, titles

    assert not refused, f"the book asked for {refused}"
