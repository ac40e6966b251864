"""A real JupyterLab in headless Chromium, for the browser tests and the browser benchmarks.

``JupyterLab`` starts a server on a free localhost port over a folder of notebooks (quiet settings: no news toast,
no update check, a private workspace folder) and stops it, with its kernels, by its own process id. ``Notebook``
drives one notebook in a Playwright page: open it, Run All, wait for the kernel, find the widgets, time a redraw
of a plotly figure, and list what went wrong (kernel tracebacks in the server log and the log console, page
errors). Debian's chromium is used (Playwright's own browser download does not work offline).
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
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
VIEWPORT = {"width": 1400, "height": 1000}
# The status bar names the kernel and its state once one has started ("Python 3 (ipykernel) | Idle").
KERNEL_IDLE_JS = "() => /ipykernel\\) \\| Idle/.test(document.body.innerText)"
# Every plotly figure in the notebook records the time of each redraw, so a test can wait for "redrawn after the
# action": plotly.js fires 'plotly_afterplot' after a full redraw and 'plotly_animated' after an animation frame
# (how the toy explorer moves its step without redrawing the figure).
WATCH_REDRAWS_JS = """() => {
    window.__redraws = window.__redraws || [];
    for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        if (plot.__watched) continue;
        plot.__watched = true;
        for (const event of ['plotly_afterplot', 'plotly_animated']) {
            plot.on(event, () => window.__redraws.push(performance.now()));
        }
    }
    return window.__redraws.length;
}"""
# The input widgets of ipywidgets 8, by kind: what a person can click, drag or type into.
CONTROL_SELECTORS = {
    "slider": ".widget-slider:not(.widget-readout)",
    "dropdown": ".widget-dropdown select",
    "toggle": ".widget-toggle-buttons button",
    "checkbox": ".widget-checkbox input",
    "text": ".widget-text input",
    "button": "button.jupyter-button",
    "play": ".widget-play button",
}
# What an uncaught error in a widget callback or a kernel comm handler leaves in the server's log.
KERNEL_ERROR_MARKERS = ("Traceback (most recent call last)", "Exception in comm_msg", "Error in ")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


class JupyterLab:
    """A JupyterLab server over ``folder`` (its notebooks), used as a context manager; ``base`` is its URL.

    Kernels inherit ``PYTHONPATH`` = the repository root and one OpenMP thread. ``log`` is the server's log,
    which also receives the kernels' standard error.
    """

    def __init__(self, folder: Path, scratch: Path) -> None:
        self.folder = folder
        self.scratch = scratch
        self.log = scratch / "jupyter.log"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._server: subprocess.Popen | None = None
        self._log_file: Any = None

    def __enter__(self) -> JupyterLab:
        settings = self.scratch / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)  # no "official Jupyter news?" toast over the widgets
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={self.folder}", "--ServerApp.port_retries=0",
            f"--LabApp.workspaces_dir={self.scratch / 'workspaces'}",
            f"--LabApp.user_settings_dir={self.scratch / 'settings'}",
            "--ServerApp.config_file=/dev/null", "--allow-root",
        ]  # fmt: skip
        self._log_file = self.log.open("w")
        self._server = subprocess.Popen(
            command, env=environment, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{self.base}/api/status?token={TOKEN}")
                return self
            except OSError:
                if self._server.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"JupyterLab did not start; its log:\n{self.log.read_text()}") from None
                time.sleep(0.5)

    def __exit__(self, *exc_info: object) -> None:
        server = self._server
        if server is not None:
            server.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)  # the group holds only this server and its kernels
                server.wait()
            self._server = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def url(self, notebook: str) -> str:
        """The notebook's URL (``reset``: no restored workspace duplicating widgets)."""
        return f"{self.base}/lab/tree/{notebook}?reset&token={TOKEN}"

    def kernel_errors(self, since: int = 0) -> list[str]:
        """Lines of the server log from byte ``since`` on that show an uncaught error in a kernel."""
        text = self.log.read_text(errors="replace")[since:]
        return [line for line in text.splitlines() if any(marker in line for marker in KERNEL_ERROR_MARKERS)]

    def log_size(self) -> int:
        return len(self.log.read_text(errors="replace"))


class Notebook:
    """One notebook open in a Playwright ``page`` of ``lab``; ``page_errors`` collects the page's uncaught errors."""

    def __init__(self, page: Any, lab: JupyterLab, name: str) -> None:
        self.page = page
        self.lab = lab
        self.name = name
        self.page_errors: list[str] = []
        self._log_start = lab.log_size()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def kernel_errors(self) -> list[str]:
        """Lines of the server's log since this notebook was opened that show an uncaught error in a kernel."""
        return self.lab.kernel_errors(self._log_start)

    def run_all(self, ready_selector: str, timeout: float = 180) -> None:
        """Open the notebook, wait for its kernel, Run All Cells and wait for ``ready_selector`` to show."""
        page = self.page
        page.goto(self.lab.url(self.name))
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_function(KERNEL_IDLE_JS, timeout=90_000)  # the indicator is idle before a kernel exists
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        page.wait_for_selector(ready_selector, timeout=timeout * 1000)
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until the kernel is idle (status bar) and every figure is watched for redraws."""
        self.page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout * 1000)
        self.page.evaluate(WATCH_REDRAWS_JS)

    def redraws(self) -> list[float]:
        """``performance.now()`` of every figure redraw seen so far, milliseconds."""
        self.page.evaluate(WATCH_REDRAWS_JS)
        return self.page.evaluate("() => window.__redraws.slice()")

    def now(self) -> float:
        return self.page.evaluate("() => performance.now()")

    def time_redraw(self, action: Any, *, settle: float = 0.6, timeout: float = 60) -> float:
        """Seconds from just before ``action()`` to the last figure redraw it caused.

        Waits for a first redraw after the action, then until no redraw came for ``settle`` seconds and the kernel
        is idle. Raises ``AssertionError`` when nothing was redrawn within ``timeout`` seconds.
        """
        before = len(self.redraws())
        started = self.now()
        action()
        deadline = time.monotonic() + timeout
        while len(self.redraws()) == before:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no figure redrew within {timeout} s of the action")
            time.sleep(0.02)
        while True:
            seen = len(self.redraws())
            time.sleep(settle)
            self.page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout * 1000)
            if len(self.redraws()) == seen:
                break
        return (self.redraws()[-1] - started) / 1000

    def hidden_controls(self, root: str = ".jp-Notebook") -> list[str]:
        """Input widgets under ``root`` with a zero-size bounding box or ``visibility: hidden``, by kind and label."""
        return self.page.evaluate(
            """([root, selectors]) => {
                const hidden = [];
                for (const [kind, selector] of Object.entries(selectors)) {
                    for (const element of document.querySelector(root).querySelectorAll(selector)) {
                        const box = element.getBoundingClientRect();
                        const style = getComputedStyle(element);
                        if (box.width > 0 && box.height > 0 && style.visibility !== 'hidden') continue;
                        const owner = element.closest('.widget-inline-hbox, .jupyter-widgets') || element;
                        const label = owner.querySelector('.widget-label');
                        hidden.push(`${kind} ${label ? label.textContent : element.textContent}`.trim());
                    }
                }
                return hidden;
            }""",
            [root, CONTROL_SELECTORS],
        )

    def control_count(self, kind: str) -> int:
        return self.page.locator(f".jp-Notebook {CONTROL_SELECTORS[kind]}").count()

    def log_console_entries(self) -> list[str]:
        """The entries of JupyterLab's log console (View → Show Log Console, opened if it is not; level "warning"
        and above): what the kernel said outside any cell, such as a widget callback's traceback."""
        page = self.page
        panel = page.locator(".jp-LogConsolePanel")
        if not panel.is_visible():
            page.locator(".lm-MenuBar-itemLabel", has_text="View").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Show Log Console").first.click()
            panel.wait_for(timeout=10_000)
        time.sleep(0.5)
        return page.evaluate(
            """() => Array.from(document.querySelectorAll('.jp-LogConsolePanel .jp-OutputArea-child'))
                .map(element => element.innerText)"""
        )

    def slider(self, description: str) -> Any:
        """The slider widget whose label is ``description``."""
        label = self.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
        return self.page.locator(".widget-slider", has=label).first

    def drag_slider(self, description: str, fraction: float) -> None:
        """Drag the slider's handle to ``fraction`` ∈ [0, 1] of its track (mouse down, move, up)."""
        slider = self.slider(description)
        slider.scroll_into_view_if_needed()
        handle = slider.locator(".noUi-handle").first
        track = slider.locator(".noUi-target").first.bounding_box()
        box = handle.bounding_box()
        mouse = self.page.mouse
        mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        mouse.down()
        mouse.move(track["x"] + fraction * track["width"], box["y"] + box["height"] / 2, steps=4)
        mouse.up()

    def screenshot(self, path: Path, locator: str | None = None) -> Path:
        """Save a screenshot of the page (or of the first element matching ``locator``) to ``path``."""
        if locator is None:
            self.page.screenshot(path=str(path), full_page=False)
        else:
            self.page.locator(locator).first.screenshot(path=str(path))
        return path
