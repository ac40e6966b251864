"""ToyExplorer: an ipywidgets panel that runs the four methods on a 2-D landscape and scrubs through their steps.

No math here: the panel reads its widgets into a ``RunSettings``, calls ``workbench.toy.run_all`` and hands the
records to ``workbench.viz.toy_figures``. What a change redraws depends on what it changes:

* the step slider (with its play button) and the focus method: ``update_step`` only (vectors, ball, markers,
  cursors), cheap enough to follow the slider continuously;
* start point, ρ, α, lr, steps, the X-SAM switches, the v1 source: the trajectories are recomputed and
  ``update_trajectories`` redraws paths and side curves, not the contours;
* the landscape: its scenario (start and settings) is loaded into the widgets and the contours are redrawn too.

The sliders that trigger a recomputation report on release (``continuous_update=False``). A click on the landscape
moves the start point there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.callbacks import Points

from workbench.optim.xsam import ORIENTATIONS
from workbench.toy.basins import ending_table
from workbench.toy.landscapes import LANDSCAPES
from workbench.toy.scenarios import Scenario, scenario
from workbench.toy.trajectory import EIGENVECTOR_SOURCES, METHODS, RunSettings, Trajectory, run_all
from workbench.viz.toy_figures import (
    GRID_RESOLUTION,
    geometry_figure,
    update_landscape,
    update_step,
    update_trajectories,
)

_SLIDER_STYLE = {"description_width": "110px"}
_WIDE = widgets.Layout(width="340px")


class ToyExplorer:
    """The teaching explorer: controls on top, the live ``geometry_figure`` below.

    Display it by leaving it as the last expression of a cell (or ``display(explorer)``).

    Args:
        landscape: a name in ``LANDSCAPES``; its scenario (``workbench.toy.SCENARIOS``) gives the landscape
            parameters and, where the next arguments are ``None``, the start, settings, focus and step.
        start: θ_0 (x, y).
        settings: the run settings.
        focus: the method whose step vectors are drawn first (one of ``METHODS``).
        step: the step shown first.
        resolution: contour grid points per axis.

    Attributes:
        figure: the ``go.FigureWidget``.
        trajectories: the current ``Trajectory`` per method.
        widget: the whole panel (an ``ipywidgets.VBox``).
    """

    def __init__(
        self,
        landscape: str = "sharp_flat",
        start: tuple[float, float] | None = None,
        settings: RunSettings | None = None,
        *,
        focus: str | None = None,
        step: int | None = None,
        resolution: int = GRID_RESOLUTION,
    ) -> None:
        self._scenario: Scenario = scenario(landscape)
        self._landscape = self._scenario.make_landscape()
        self._resolution = resolution
        self._quiet = False
        self._build_controls(landscape)
        with self._holding():
            self._load(self._scenario.adjusted(start=start, focus=focus, step=step, **_fields_of(settings)))
        self.trajectories = self._run()
        self.figure = geometry_figure(
            self._landscape,
            self.trajectories,
            rho=self._settings().rho,
            step=self.step_slider.value,
            focus=self.focus.value,
            resolution=resolution,
            widget=True,
        )
        self.figure.data[0].on_click(self._on_click)
        self._observe()
        self.widget = widgets.VBox([self._controls(), self.story, self.status, self.figure])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- widgets ------------------------------------------------------------------------------------------------

    def _build_controls(self, landscape: str) -> None:
        def slider(kind: type, description: str, **kwargs: Any) -> widgets.Widget:
            return kind(description=description, continuous_update=False, style=_SLIDER_STYLE, layout=_WIDE, **kwargs)

        self.landscape_box = widgets.Dropdown(options=list(LANDSCAPES), value=landscape, description="landscape")
        self.start_x = slider(widgets.FloatSlider, "start x", step=0.01)
        self.start_y = slider(widgets.FloatSlider, "start y", step=0.01)
        self.rho = slider(widgets.FloatSlider, "ρ", min=0.01, max=0.5, step=0.01)
        self.lr = slider(widgets.FloatLogSlider, "lr", base=10, min=-3, max=-0.5, step=0.05, readout_format=".3g")
        self.steps = slider(widgets.IntSlider, "steps", min=10, max=400, step=10)
        self.eigen_alpha = slider(widgets.FloatSlider, "α Eigen-SAM", min=0.0, max=2.0, step=0.05)
        self.xsam_alpha = slider(widgets.FloatSlider, "α X-SAM", min=0.0, max=2.0, step=0.05)
        self.xsam_normalize = widgets.Checkbox(description="X-SAM unit direction (published)", indent=False)
        self.xsam_angle_gate = widgets.Checkbox(description="X-SAM only when ∠(g_adv, v) ≤ 90°", indent=False)
        self.xsam_orientation = widgets.Dropdown(options=list(ORIENTATIONS), description="X-SAM v sign")
        self.eigenvector = widgets.ToggleButtons(options=list(EIGENVECTOR_SOURCES), description="v1 source")
        self.freq = slider(widgets.IntSlider, "refresh every", min=1, max=50)
        self.power_iters = slider(widgets.IntSlider, "power iters", min=1, max=20)
        self.focus = widgets.ToggleButtons(options=list(METHODS), description="vectors of")
        self.step_slider = widgets.IntSlider(description="step", min=0, style=_SLIDER_STYLE, layout=_WIDE)
        self.play = widgets.Play(interval=150, min=0)
        widgets.jslink((self.play, "value"), (self.step_slider, "value"))
        self.story = widgets.HTML()
        self.status = widgets.HTML()

    def _controls(self) -> widgets.Widget:
        column = widgets.VBox
        return widgets.VBox(
            [
                widgets.HBox([self.landscape_box, self.focus]),
                widgets.HBox(
                    [
                        column([self.start_x, self.start_y, self.rho, self.lr]),
                        column([self.steps, self.eigen_alpha, self.xsam_alpha, self.xsam_orientation]),
                        column(
                            [self.xsam_normalize, self.xsam_angle_gate, self.eigenvector, self.freq, self.power_iters]
                        ),
                    ]
                ),
                widgets.HBox([self.play, self.step_slider]),
            ]
        )

    def _settings_widgets(self) -> dict[str, widgets.Widget]:
        """The widget behind each ``RunSettings`` field it controls."""
        return {
            "rho": self.rho,
            "lr": self.lr,
            "steps": self.steps,
            "eigen_alpha": self.eigen_alpha,
            "xsam_alpha": self.xsam_alpha,
            "xsam_normalize": self.xsam_normalize,
            "xsam_angle_gate": self.xsam_angle_gate,
            "xsam_orientation": self.xsam_orientation,
            "eigenvector": self.eigenvector,
            "freq": self.freq,
            "power_iters": self.power_iters,
        }

    def _settings(self) -> RunSettings:
        values = {name: box.value for name, box in self._settings_widgets().items()}
        return replace(self._scenario.settings, **values)

    def _start(self) -> tuple[float, float]:
        return (self.start_x.value, self.start_y.value)

    # -- state changes ------------------------------------------------------------------------------------------

    @contextmanager
    def _holding(self) -> Iterator[None]:
        """Set widgets without triggering recomputations (observers return at once inside the block)."""
        self._quiet, quiet = True, self._quiet
        try:
            yield
        finally:
            self._quiet = quiet

    def _load(self, chosen: Scenario) -> None:
        """Put the landscape's bounds and ``chosen``'s start, settings, focus and step into the widgets (inside
        ``_holding``)."""
        for box, (low, high), value in zip(
            (self.start_x, self.start_y), self._landscape.bounds, chosen.start, strict=True
        ):
            box.min, box.max = min(low, box.min), max(high, box.max)  # widen first so value never leaves [min, max]
            box.value = value
            box.min, box.max = low, high
        for name, box in self._settings_widgets().items():
            box.value = getattr(chosen.settings, name)
        self.step_slider.max = self.play.max = chosen.settings.steps - 1
        self.step_slider.value = chosen.step
        self.focus.value = chosen.focus
        self.story.value = f"<p style='max-width:1100px'>{chosen.story}</p>"
        self._show_power_controls()

    def _show_power_controls(self) -> None:
        display = "flex" if self.eigenvector.value == "power" else "none"
        self.freq.layout.display = self.power_iters.layout.display = display

    def _run(self) -> dict[str, Trajectory]:
        started = time.perf_counter()
        trajectories = run_all(self._landscape, self._start(), self._settings())
        elapsed = time.perf_counter() - started
        with self._holding():
            self.step_slider.max = self.play.max = self._settings().steps - 1
        table = ending_table(self._landscape, trajectories)
        endings = ", ".join(f"{row.method} → {row.basin} (λ1 {row.lambda1:.3g})" for row in table.itertuples())
        self.status.value = f"<b>ends in:</b> {endings} &nbsp; <i>(computed in {elapsed:.2f} s)</i>"
        return trajectories

    def _observe(self) -> None:
        self.landscape_box.observe(self._on_landscape, names="value")
        for box in [self.start_x, self.start_y, *self._settings_widgets().values()]:
            box.observe(self._on_settings, names="value")
        self.step_slider.observe(self._on_step, names="value")
        self.focus.observe(self._on_step, names="value")

    def _on_landscape(self, change: dict[str, Any]) -> None:
        self._scenario = scenario(change["new"])
        self._landscape = self._scenario.make_landscape()
        with self._holding():
            self._load(self._scenario)
        with self.figure.batch_update():
            update_landscape(self.figure, self._landscape, resolution=self._resolution)
            self._recompute()

    def _on_settings(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        self._show_power_controls()
        self._recompute()

    def _recompute(self) -> None:
        self.trajectories = self._run()
        settings = self._settings()
        update_trajectories(
            self.figure, self.trajectories, rho=settings.rho, step=self.step_slider.value, focus=self.focus.value
        )

    def _on_step(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        update_step(
            self.figure,
            self.trajectories,
            rho=self._settings().rho,
            step=self.step_slider.value,
            focus=self.focus.value,
        )

    def _on_click(self, trace: go.Contour, points: Points, state: Any) -> None:
        """A click on the landscape: start there."""
        if not points.xs:
            return
        with self._holding():
            self.start_x.value, self.start_y.value = points.xs[0], points.ys[0]
        self._recompute()


def _fields_of(settings: RunSettings | None) -> dict[str, Any]:
    """``settings`` as keyword arguments (none when ``None``)."""
    return {} if settings is None else {field.name: getattr(settings, field.name) for field in fields(settings)}


def toy_explorer(landscape: str = "sharp_flat", **settings: Any) -> ToyExplorer:
    """The teaching explorer in one line: ``toy_explorer("curved_valley")``.

    Args:
        landscape: a name in ``LANDSCAPES``.
        **settings: start, settings, focus, step, resolution (see ``ToyExplorer``).
    """
    return ToyExplorer(landscape, **settings)
