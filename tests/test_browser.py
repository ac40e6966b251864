"""The live-training notebook in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

Runs 02_live_training.ipynb with Run All, presses Start and checks that the status line's step counter and the
chart's point count grow, presses Pause and checks that both hold, presses Stop and checks nothing drawn was
lost, and saves a screenshot. Skipped (with the reason) when Chromium or Playwright is missing; CI installs both
(``apt-get install -y chromium``, ``pip install playwright``; never ``playwright install``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_live_training.ipynb"
TOKEN = "workbench-browser-test"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium without background networking (it would flood the closed network), sandbox or GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The chart's points, summed over the FigureWidget's traces (plotly.js keeps them on the plot's div).
POINT_COUNT_JS = """() => {
    const plot = document.querySelector('.jupyter-widgets .js-plotly-plot, .js-plotly-plot');
    if (!plot || !plot.data) return -1;
    return plot.data.reduce((total, trace) => total + (trace.x ? trace.x.length : 0), 0);
}"""
# The status bar names the kernel and its state once one has started ("Python 3 (ipykernel) | Idle").
KERNEL_IDLE_JS = "() => /ipykernel\\) \\| Idle/.test(document.body.innerText)"
STEP_PATTERN = re.compile(r"step (\d+) / (\d+)")

# CI (.ci/run) sets WORKBENCH_REQUIRE_BROWSER=1: there a missing browser or playwright fails the run, never skips it.
REQUIRE_BROWSER = os.environ.get("WORKBENCH_REQUIRE_BROWSER") == "1"
if REQUIRE_BROWSER and CHROMIUM is None:
    raise RuntimeError("WORKBENCH_REQUIRE_BROWSER=1 but Debian's chromium is not installed (apt-get install -y chromium)")
if REQUIRE_BROWSER:
    import playwright.sync_api as playwright_api
else:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing (pip install playwright)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on a free localhost port serving a copy of the notebook; yields its base URL."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "official Jupyter news?" toast over the widgets, no update check
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = _free_port()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # kernels inherit both
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
        "--ServerApp.config_file=/dev/null", "--allow-root",
    ]  # fmt: skip
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/api/status?token={TOKEN}")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(tmp_path / 'jupyter.log').read_text()}")
                time.sleep(0.5)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the group holds only this server and its kernels
            server.wait()
        log.close()


def _status(page) -> str:
    return page.locator(".jupyter-widgets.widget-html").first.inner_text()


def _step(page) -> int:
    match = STEP_PATTERN.search(_status(page))
    return int(match.group(1)) if match else -1


def _wait_for(condition, timeout: float, what: str, page) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; status line: {_status(page)!r}")
        time.sleep(0.25)


def test_live_training_notebook_in_chromium(jupyter_lab: str, tmp_path: Path) -> None:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{jupyter_lab}/lab/tree/{NOTEBOOK}?reset&token={TOKEN}")
            page.wait_for_selector(".jp-Notebook", timeout=90_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
            page.wait_for_function(KERNEL_IDLE_JS, timeout=90_000)  # the indicator is 'idle' before a kernel exists
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            start = page.locator(".jupyter-widgets button", has_text="Start")
            start.wait_for(timeout=120_000)
            page.wait_for_function(f"({POINT_COUNT_JS})() >= 0", timeout=60_000)
            start.scroll_into_view_if_needed()
            start.click()

            _wait_for(lambda: _step(page) > 0, 120, "the step counter to move", page)
            first_step, first_points = _step(page), page.evaluate(POINT_COUNT_JS)
            _wait_for(
                lambda: _step(page) > first_step and page.evaluate(POINT_COUNT_JS) > first_points,
                60,
                "the step counter and the chart's points to grow",
                page,
            )

            page.locator(".jupyter-widgets button", has_text="Pause").click()
            _wait_for(lambda: " paused " in f" {_status(page)} ", 60, "the run to pause", page)
            held_step, held_points = _step(page), page.evaluate(POINT_COUNT_JS)
            time.sleep(2.0)
            assert (_step(page), page.evaluate(POINT_COUNT_JS)) == (held_step, held_points)

            page.locator(".jupyter-widgets button", has_text="Stop").click()
            _wait_for(lambda: "stopped" in _status(page), 60, "the run to stop", page)
            assert _step(page) == held_step, "stopping a paused run trains no further step"
            assert page.evaluate(POINT_COUNT_JS) >= held_points, "stopping lost points already drawn"
            assert f"stopped by request at step {held_step}" in _status(page)
            page.screenshot(path=str(tmp_path / "live_training.png"), full_page=False)
        finally:
            browser.close()
    assert (tmp_path / "live_training.png").stat().st_size > 0
