"""The landscape explorer: 1-D and 2-D loss slices through a saved or live model, with the trajectory on them.

Choose the directions (random filter-normalised, Hessian eigenvectors, trajectory PCA), the resolution and the
span; press Compute. The slice is evaluated by ``workbench.probes`` on a background thread, a row at a time,
and the figure fills in as rows arrive (redrawn at most every ``REDRAW_INTERVAL`` seconds); Stop ends it
early. Switching between contour and surface, or the log scale, redraws without recomputing. No math here.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from workbench._checks import check_choice, check_float, check_int
from workbench.live.measure import (
    DIRECTION_KINDS,
    Directions,
    grid,
    landscape_directions,
    landscape_line,
    landscape_rows,
)
from workbench.live.snapshot import ModelSnapshot, Source, load_snapshot, snapshot_of
from workbench.live.tasks import BackgroundTask
from workbench.probes import LossSlice1D, LossSlice2D
from workbench.ui._widgets import Panel, fill_width
from workbench.ui.charts import Throttle, replace_figure
from workbench.viz.landscape_figures import VIEWS, line_figure, plane_figure

#: Shortest time between redraws of a filling 2-D slice, seconds: a surface's z goes as JSON, so redraw it rarely.
REDRAW_INTERVAL = 1.0
#: Largest grid the resolution slider offers (101² = 10 201 forward passes).
MAX_RESOLUTION = 101
_STYLE = {"description_width": "90px"}
_FIELD = widgets.Layout(width="260px")
_KIND_TITLES = {"random": "random (filter-normalised)", "eigen": "Hessian eigenvectors", "pca": "trajectory PCA"}


class LandscapeExplorer(Panel):
    """Widgets for loss slices; display it by leaving it last in a cell.

    Args:
        source: a run directory or checkpoint (loaded once), a ``LiveRun`` or training dashboard (a new snapshot
            at every Compute), a ``Trainer`` that is not running, or a ``ModelSnapshot``.
        kind: directions, one of ``DIRECTION_KINDS``.
        dimensions: 1 (a curve) or 2 (a plane).
        resolution: points per axis, ≥ 2 (odd values include θ itself).
        span: half-width of the slice in multiples of the directions; None: the directions' suggestion (1 for
            filter-normalised directions, the trajectory's extent for PCA).
        view: ``"contour"`` or ``"surface"``.
        log_scale: show log10 of the loss.
        seed: seed of random directions and of the eigen solver.

    Attributes:
        result: the last slice (``LossSlice1D`` or ``LossSlice2D``; partial while computing) and ``directions``.
    """

    def __init__(
        self,
        source: Source,
        *,
        kind: str = "random",
        dimensions: int = 2,
        resolution: int = 25,
        span: float | None = None,
        view: str = "contour",
        log_scale: bool = False,
        seed: int = 0,
    ) -> None:
        check_choice("kind", kind, DIRECTION_KINDS)
        check_int("dimensions", dimensions, minimum=1, maximum=2)
        check_int("resolution", resolution, minimum=2, maximum=MAX_RESOLUTION)
        check_choice("view", view, VIEWS)
        if span is not None:
            check_float("span", span, minimum=0.0, min_inclusive=False)
        self.source: Source = load_snapshot(source) if isinstance(source, str | Path) else source
        self.result: LossSlice1D | LossSlice2D | None = None
        self.directions: Directions | None = None
        self._title = ""
        self._cache: dict[tuple[str, int, int], Directions] = {}
        self._cache_owner: ModelSnapshot | None = None
        self.controls: dict[str, widgets.ValueWidget] = {
            "kind": widgets.Dropdown(options=[(_KIND_TITLES[k], k) for k in DIRECTION_KINDS], value=kind),
            "dimensions": widgets.ToggleButtons(options=[("1-D", 1), ("2-D", 2)], value=dimensions),
            "resolution": widgets.IntSlider(value=resolution, min=2, max=MAX_RESOLUTION, description="resolution"),
            "auto_span": widgets.Checkbox(value=span is None, description="auto span", indent=False),
            "span": widgets.FloatText(value=1.0 if span is None else span, description="span ±"),
            "seed": widgets.IntText(value=seed, description="seed"),
            "view": widgets.ToggleButtons(options=list(VIEWS), value=view),
            "log_scale": widgets.Checkbox(value=log_scale, description="log scale", indent=False),
        }
        self.controls["kind"].description = "directions"
        for name in ("kind", "resolution", "span", "seed"):
            self.controls[name].style, self.controls[name].layout = _STYLE, _FIELD
        self.controls["span"].disabled = span is None
        self.controls["auto_span"].observe(self._auto_span_changed, names="value")
        for name in ("view", "log_scale"):
            self.controls[name].observe(lambda _change: self._guarded(self.redraw), names="value")
        self.buttons = {
            "compute": widgets.Button(description="Compute", button_style="primary", icon="play"),
            "stop": widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True),
        }
        self.buttons["compute"].on_click(lambda _button: self._guarded(self.compute))
        self.buttons["stop"].on_click(lambda _button: self.task.cancel())
        self.status = widgets.HTML(value="press Compute")
        self.plot = fill_width(go.FigureWidget(layout={"template": "plotly_white", "height": 520}))
        self.task = BackgroundTask("landscape explorer", on_error=self._show_error)
        controls = self.controls
        self.widget = widgets.VBox(
            [
                widgets.HBox([controls["kind"], controls["dimensions"], controls["seed"]]),
                widgets.HBox([controls["resolution"], controls["span"], controls["auto_span"]]),
                widgets.HBox([controls["view"], controls["log_scale"], self.buttons["compute"], self.buttons["stop"]]),
                self.status,
                self.plot,
            ]
        )

    def compute(self, *, wait: bool = False, **settings: Any) -> None:
        """Evaluate the slice set in the widgets (after applying ``settings``, see ``set``) on a background
        thread; ``wait``: until done, re-raising its error.

        Raises:
            ValueError: for a bad setting, or while a slice is being computed.
        """
        self.set(**settings)
        if self.task.busy:
            raise ValueError("a slice is being computed; wait for it or press Stop")
        settings = {name: control.value for name, control in self.controls.items()}
        grid(settings["span"] if not settings["auto_span"] else 1.0, settings["resolution"])  # fail early
        self._set_busy(True)
        self.status.value = "taking a snapshot…"
        self.task.start(lambda cancelled: self._compute(settings, cancelled))
        if wait:
            self.task.join()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running computation (re-raising its error)."""
        self.task.join(timeout)

    def figure(self) -> go.Figure:
        """The last slice as a static figure, in the view and scale set in the widgets.

        Raises:
            ValueError: before the first slice.
        """
        if self.result is None or self.directions is None:
            raise ValueError("nothing computed yet: press Compute (or call compute(wait=True)) first")
        log_scale, title = self.controls["log_scale"].value, self._title
        if isinstance(self.result, LossSlice1D):
            return line_figure(self.result, axis_title=self.directions.title, title=title, log_scale=log_scale)
        return plane_figure(
            self.result,
            view=self.controls["view"].value,
            projection=self.directions.projection,
            axis_title=self.directions.title,
            title=title,
            log_scale=log_scale,
        )

    def redraw(self) -> None:
        """Draw the last slice again (after a change of view or scale)."""
        if self.result is not None:
            replace_figure(self.plot, self.figure())

    # -- the computing thread ------------------------------------------------------------------------------------------

    def _compute(self, settings: dict[str, Any], cancelled: threading.Event) -> None:
        snapshot = snapshot_of(self.source)
        self.status.value = f"directions ({settings['kind']}) for {html.escape(snapshot.label)}…"
        directions = self._directions(snapshot, settings["kind"], settings["dimensions"], settings["seed"])
        span = directions.span if settings["auto_span"] else settings["span"]
        self.controls["span"].value = span
        coords = grid(span, settings["resolution"])
        self.directions = directions
        self._title = f"loss landscape: {snapshot.label} (step {snapshot.step}), {directions.title}"
        if settings["dimensions"] == 1:
            self.result = landscape_line(snapshot, directions, coords)
            self.redraw()
        else:
            throttle = Throttle(min_interval=REDRAW_INTERVAL)
            for rows_done, partial in enumerate(landscape_rows(snapshot, directions, coords, coords), start=1):
                self.result = partial
                self.status.value = f"row {rows_done} / {len(coords)}…"
                if throttle.due() or rows_done == len(coords):
                    started = time.perf_counter()
                    self.redraw()
                    throttle.done(started, time.perf_counter() - started)
                if cancelled.is_set():
                    self.redraw()
                    break
        self.status.value = self._summary(snapshot, directions, cancelled.is_set())
        self._set_busy(False)

    def _directions(self, snapshot: ModelSnapshot, kind: str, count: int, seed: int) -> Directions:
        """The directions, reused while the snapshot stays the same (a saved run); a live source's every new
        snapshot gets new ones."""
        if snapshot is not self._cache_owner:
            self._cache, self._cache_owner = {}, snapshot
        key = (kind, count, seed)
        if key not in self._cache:
            self._cache[key] = landscape_directions(snapshot, kind, count=count, seed=seed)
        return self._cache[key]

    def _summary(self, snapshot: ModelSnapshot, directions: Directions, stopped: bool) -> str:
        parts = [f"{html.escape(snapshot.label)}, step {snapshot.step}"]
        if stopped:
            parts.append("stopped early (the blank rows were not evaluated)")
        if directions.explained is not None:
            shares = ", ".join(f"{share:.0%}" for share in directions.explained)
            parts.append(f"PCA directions explain {shares} of the trajectory's variance")
        if directions.projection is not None:
            parts.append(f"the trajectory ({len(directions.projection.steps)} snapshots) is drawn projected")
        return " · ".join(parts)

    def _set_busy(self, busy: bool) -> None:
        self.buttons["compute"].disabled = busy
        self.buttons["stop"].disabled = not busy

    def _auto_span_changed(self, change: dict[str, Any]) -> None:
        self.controls["span"].disabled = change["new"]

    def _show_error(self, error: Exception) -> None:
        super()._show_error(error)
        self._set_busy(False)


def landscape_explorer(source: Source, **settings: Any) -> LandscapeExplorer:
    """The landscape explorer in one line: ``landscape_explorer("runs/sam", kind="pca")``.

    Args:
        source: see ``LandscapeExplorer``.
        **settings: kind, dimensions, resolution, span, view, log_scale, seed.
    """
    return LandscapeExplorer(source, **settings)
