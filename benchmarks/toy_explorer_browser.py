"""How fast notebook 01's explorer answers in a real browser: JupyterLab and headless Chromium on this machine.

Runs ``notebooks/01_sam_geometry.ipynb`` with Run All and times, from the mouse or key action to the last redraw
of the figure it causes (plotly's ``plotly_afterplot``, after the kernel is idle again), each kind of change:

* a drag of the ρ, α Eigen-SAM, α X-SAM, lr and steps sliders and a click on an X-SAM switch (each recomputes
  trajectories; the issue's bound is 1 s on the default landscape);
* step scrubbing with the arrow keys on the step slider, and Play (bound 0.2 s per frame);
* a change of landscape (bound 2 s) and back;
* clicks on the map (each must set the start; the bound is that of a slider).

Each action is repeated ``--repeats`` times (alternating directions, so each one really changes the value); the
script prints every time and the median per kind, as JSON lines. ``--root`` measures another checkout (its
``workbench`` and notebook), e.g. an older commit unpacked with ``git archive``; ``--reveal-hidden`` shows
sliders the explorer hid (``display: none``, the bug of issue 11) so that such a checkout can be measured at all.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/toy_explorer_browser.py --repeats 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import browser_lab  # noqa: E402

NOTEBOOK = "01_sam_geometry.ipynb"
STEP_LABEL = "step t"  # the step slider's label ("step" before issue 11: pass --step-label step)
REVEAL_JS = """() => {
    let shown = 0;
    for (const element of document.querySelectorAll('.jupyter-widgets')) {
        if (getComputedStyle(element).display === 'none') { element.style.display = 'flex'; shown += 1; }
    }
    return shown;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="times each action is repeated")
    parser.add_argument("--root", type=Path, default=REPO, help="checkout whose workbench and notebook to measure")
    parser.add_argument("--reveal-hidden", action="store_true", help="show widgets hidden with display: none")
    parser.add_argument("--eigenvector", choices=("exact", "power"), default="exact", help="v1 source to measure")
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for a screenshot after each kind")
    parser.add_argument("--step-label", default=STEP_LABEL, help="the step slider's label in the checkout measured")
    args = parser.parse_args()
    browser_lab.ROOT = args.root.resolve()  # the kernels import this checkout's workbench
    import playwright.sync_api as playwright_api

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        folder = scratch / "notebooks"
        folder.mkdir()
        shutil.copy(args.root / "notebooks" / NOTEBOOK, folder / NOTEBOOK)
        with browser_lab.JupyterLab(folder, scratch) as lab, playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_lab.CHROMIUM, args=browser_lab.CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=browser_lab.VIEWPORT)
                notebook = browser_lab.Notebook(page, lab, NOTEBOOK)
                started = time.monotonic()
                notebook.run_all(".js-plotly-plot")
                report("run_all", [time.monotonic() - started])
                report("hidden_controls", notebook.hidden_controls())
                measure(notebook, args)
                report("kernel_errors", lab.kernel_errors())
                report("log_console", notebook.log_console_entries())
                report("page_errors", notebook.page_errors)
            finally:
                browser.close()


def measure(notebook: browser_lab.Notebook, args: argparse.Namespace) -> None:
    page = notebook.page

    def reveal() -> None:
        if args.reveal_hidden:
            page.evaluate(REVEAL_JS)

    def shot(name: str) -> None:
        if args.screenshots is not None:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            notebook.screenshot(args.screenshots / f"{name}.png")

    reveal()
    if args.eigenvector == "power":
        notebook.time_redraw(lambda: page.locator(".widget-toggle-buttons button", has_text="power").first.click())
        reveal()
    for label, low, high in (
        ("ρ", 0.3, 0.6),
        ("α Eigen-SAM", 0.2, 0.5),
        ("α X-SAM", 0.15, 0.4),
        ("lr", 0.6, 0.75),
        ("steps", 0.15, 0.3),
    ):
        times = [
            notebook.time_redraw(lambda f=(low if repeat % 2 else high), label=label: notebook.drag_slider(label, f))
            for repeat in range(args.repeats)
        ]
        report(f"slider {label}", times)
    switch = page.locator(".widget-checkbox input").first
    report("switch", [notebook.time_redraw(switch.click) for _ in range(args.repeats)])
    shot("after_sliders")

    step = notebook.slider(args.step_label).locator(".noUi-handle").first
    step.scroll_into_view_if_needed()
    step.focus()
    scrub = []
    for repeat in range(3 * args.repeats):
        key = "ArrowRight" if repeat < 2 * args.repeats else "ArrowLeft"
        scrub.append(notebook.time_redraw(lambda key=key: page.keyboard.press(key), settle=0.3))
    report("step scrub (arrow key)", scrub)
    gaps, lag = play(notebook)
    report("play: time between frames", gaps)
    report("play: lag from Stop to the last frame", [lag])
    shot("after_play")

    box = page.locator(".widget-dropdown select").first
    for name in ("gaussian_wells", "sharp_flat") * args.repeats:
        report(f"landscape → {name}", [notebook.time_redraw(lambda name=name: box.select_option(name), settle=1.0)])
        reveal()
    shot("after_landscape")

    clicks, moved = [], []
    for repeat in range(args.repeats):
        x_before = start_value(notebook)
        spot = (0.35, 0.45) if repeat % 2 else (0.55, 0.6)
        try:
            clicks.append(notebook.time_redraw(lambda spot=spot: click_map(notebook, *spot), timeout=20))
        except AssertionError:  # the click did nothing (what issue 11 saw)
            clicks.append(float("nan"))
        moved.append(start_value(notebook) != x_before)
    report("click on the map", clicks)
    report("click moved the start", moved)
    shot("after_clicks")


def play(notebook: browser_lab.Notebook, seconds: float = 4.0) -> tuple[list[float], float]:
    """Press Play from step 0 for ``seconds``, then Stop: the time between redraws while playing (seconds), and
    the lag from Stop to the last redraw (the backlog of frames the kernel had not drawn yet)."""
    page = notebook.page
    buttons = page.locator(".widget-play button")
    notebook.time_redraw(lambda: page.keyboard.press("Home"), settle=0.3)
    before = len(notebook.redraws())
    buttons.nth(0).click()
    time.sleep(seconds)
    stopped = notebook.now()
    buttons.nth(1).click()
    notebook.wait_idle()
    time.sleep(1.0)
    notebook.wait_idle()
    redraws = notebook.redraws()[before:]
    gaps = [(later - earlier) / 1000 for earlier, later in itertools.pairwise(redraws)]
    lag = max(0.0, (redraws[-1] - stopped) / 1000) if redraws else float("nan")
    return gaps, lag


def start_value(notebook: browser_lab.Notebook) -> str:
    return notebook.slider("start x").locator(".widget-readout").first.inner_text()


def click_map(notebook: browser_lab.Notebook, fx: float, fy: float) -> None:
    """Click the landscape panel at fractions (fx, fy) of its plotting area (from its left and top)."""
    area = notebook.page.locator(".js-plotly-plot .nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    notebook.page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def report(name: str, values: list) -> None:
    row: dict[str, object] = {"measure": name, "values": [round(v, 3) if isinstance(v, float) else v for v in values]}
    numbers = [v for v in values if isinstance(v, float) and v == v]  # NaN (no redraw) left out
    if numbers:
        row["median"] = round(statistics.median(numbers), 3)
        row["max"] = round(max(numbers), 3)
    print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
