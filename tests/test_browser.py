"""The dashboard in a real browser: JupyterLab on localhost, notebooks/06_compare.ipynb in headless Chromium.

Debian's chromium driven by Playwright through executable_path (no browser download; never `playwright install`).
`make test` installs chromium first (scripts/install_browser.sh); without it this test skips and says why.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ragft import report

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("RAGFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_MS = 600_000  # the notebook's cells, smoke profile: about a minute with cached adapters, longer on a cold cache
JUPYTER = Path(sys.executable).with_name("jupyter")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def jupyterlab(root: Path, tmp: Path):
    """A JupyterLab server on a free localhost port with a random token, serving `root`; yields (url, token).

    Its settings live in `tmp` (every cell kept in the DOM, no news or update checks, no toasts).
    """
    token, port = os.urandom(16).hex(), _free_port()
    settings = tmp / "settings"
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
                           "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False,
                                                               "doNotDisturbMode": True}}.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "ws"),
           "PYTHONPATH": str(report.NOTEBOOK_DIR.parent)}
    log = tmp / "jupyterlab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(JUPYTER), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc, log)
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a folder that holds 06_compare.ipynb prepared for the smoke profile; yields (url, token, tmp)."""
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no chromium at {CHROMIUM}: run scripts/install_browser.sh (apt-get install chromium) or set RAGFT_CHROMIUM")
    pytest.importorskip("playwright.sync_api", reason="the python package playwright is not installed")
    if not JUPYTER.exists():
        pytest.skip(f"no jupyter next to {sys.executable}")
    import papermill as pm

    work = tmp_path / "lab"
    work.mkdir()
    pm.execute_notebook(str(report.NOTEBOOK_DIR / "06_compare.ipynb"), str(work / "06_compare.ipynb"), prepare_only=True,
                        kernel_name="python3", parameters={"PROFILE": "smoke", "RESULTS_DIR": str(tmp_path / "figures")})
    with jupyterlab(work, tmp_path) as (url, token):
        yield url, token, tmp_path


def test_dashboard_runs_and_answers_in_jupyterlab(lab):
    from playwright.sync_api import expect, sync_playwright

    url, token, tmp = lab
    shot = tmp / "dashboard.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/06_compare.ipynb?token={token}", timeout=120_000)
            page.locator(".jp-Notebook").first.wait_for(timeout=120_000)
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached(timeout=120_000)
            accept_kernel_dialog(page)

            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            panel = page.locator(".ragft-answer-panel")
            cards = panel.locator(".ragft-card")
            try:
                expect(cards.first).to_be_visible(timeout=RUN_TIMEOUT_MS)
            except AssertionError:
                page.screenshot(path=str(shot), full_page=True)
                raise AssertionError(f"the dashboard never showed an answer; screenshot {shot}; errors: {_errors(page)}") from None
            n_arms = cards.count()
            assert n_arms == 5, f"expected the five arms' cards, got {n_arms}"
            first_text = panel.inner_text()

            # change controls: keep only the base arm, then pick the second question
            for arm in ("rag", "fine-tuned", "hybrid", "raft"):
                page.locator(".widget-checkbox", has=page.locator(f"span[title='{arm}']")).locator("input").click()
            expect(cards).to_have_count(1, timeout=300_000)  # callbacks queue behind the cells still running
            question = page.locator(".widget-dropdown", has=page.locator("label", has_text="Question")).locator("select")
            second = question.locator("option").nth(1).inner_text()
            question.select_option(index=1)
            second_id = second.replace("\xa0", " ").split(" · ")[0].strip()  # ipywidgets shows spaces as &nbsp;
            expect(panel.locator(".ragft-question")).to_contain_text(second_id, timeout=180_000)
            expect(cards).to_have_count(1)
            assert panel.inner_text() != first_text
            assert "data-arm" not in panel.inner_text()  # rendered as HTML, not shown as escaped markup

            # let the remaining cells finish, then check no cell failed
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached(
                timeout=RUN_TIMEOUT_MS)
            errors = _errors(page)
            page.screenshot(path=str(shot), full_page=True)
            assert not errors, f"a cell failed in the browser run: {errors}"
        finally:
            browser.close()
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    figures = report.read_figures("06_compare", tmp / "figures")
    assert figures["static_call_all_cached"] is True


def accept_kernel_dialog(page, wait_ms: int = 3000) -> None:
    """If JupyterLab asks which kernel to start, take the preferred one (the notebook's own, python3)."""
    button = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        button.first.wait_for(state="visible", timeout=wait_ms)
    except Exception:  # playwright's TimeoutError: no dialog, nothing to do
        return
    button.first.click()


def _errors(page) -> list[str]:
    """Tracebacks shown in the notebook's outputs (first lines)."""
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [t[:400] for t in texts if "Traceback (most recent call last)" in t or "Error" in t.split("\n", 1)[0]]
