"""The report's index page in a real browser: headless Chromium opens it and checks what a reader sees.

Debian's chromium driven by Playwright through executable_path (no browser download; never `playwright install`).
`make test` installs chromium first (scripts/install_browser.sh); without it these tests skip and say why.
Set RAGFT_REPORT_DIR to a built report folder (e.g. reports/ after `make report PROFILE=smoke`) to check that one too.
"""

import os
from pathlib import Path

import pytest
from report_fixtures import write_fixture_report

from ragft import report

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("RAGFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen: what is "above the fold"

# what the page looks like to a reader, measured in the browser with every folded section opened
MEASURE = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const width = document.documentElement.clientWidth;
  const tables = [...document.querySelectorAll('table')];
  const verdicts = document.getElementById('verdicts');
  return {
    width,
    images: [...document.images].map(i => ({src: i.src.slice(0, 60), loaded: i.complete && i.naturalWidth > 0,
                                            top: i.getBoundingClientRect().top})),
    firstTable: tables.length ? tables[0].className : null,
    wide: tables.filter(t => t.getBoundingClientRect().right > width + 1).map(t => t.innerText.slice(0, 80)),
    pageWidth: document.documentElement.scrollWidth,
    verdictsTop: verdicts ? verdicts.getBoundingClientRect().top : null,
  };
}"""


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no chromium at {CHROMIUM}: run scripts/install_browser.sh (apt-get install chromium) or set RAGFT_CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def look(browser, page_path: Path, shot: Path) -> dict:
    """Open the page, measure it, save a screenshot of the first screen; return the measurements."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(page_path.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(shot))  # the first screen, as a reader opens it
        seen = page.evaluate(MEASURE)
        page.screenshot(path=str(shot.with_name(shot.stem + "_full.png")), full_page=True)
    finally:
        page.close()
    return seen


def check(seen: dict, n_images: int) -> None:
    assert len(seen["images"]) == n_images and all(i["loaded"] for i in seen["images"]), seen["images"]
    assert seen["firstTable"] == "arms", "the arms table must be the page's first table"
    assert not seen["wide"], f"tables wider than the {seen['width']} px window: {seen['wide']}"
    assert seen["pageWidth"] <= seen["width"], "the page scrolls sideways"
    # the verdicts and their plot are on the first screen
    assert seen["verdictsTop"] is not None and seen["verdictsTop"] < VIEWPORT["height"] / 2
    assert seen["images"][0]["top"] < VIEWPORT["height"]


@pytest.mark.parametrize("single_file", [False, True], ids=["linked", "single-file"])
def test_index_reads_in_a_browser(browser, tmp_path, single_file):
    names, failures = write_fixture_report(tmp_path)
    index = report.write_index(tmp_path, names, tmp_path / "figures", {"05_hybrid": 12.0}, failures, single_file=single_file)
    shot = tmp_path / f"{index.stem}.png"
    seen = look(browser, index, shot)
    check(seen, n_images=1)
    assert seen["images"][0]["src"].startswith("data:image/png" if single_file else "file://")
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_a_built_report_reads_in_a_browser(browser, tmp_path):
    folder = os.environ.get("RAGFT_REPORT_DIR")
    if not folder:
        pytest.skip("set RAGFT_REPORT_DIR to a built report folder to check its index")
    index = Path(folder) / "index.html"
    assert index.exists(), f"{index} not found: build the report first (make report PROFILE=smoke)"
    seen = look(browser, index, tmp_path / "report_index.png")
    check(seen, n_images=len(seen["images"]) or 1)
    print(f"screenshot: {tmp_path / 'report_index.png'}")
