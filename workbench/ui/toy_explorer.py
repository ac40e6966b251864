"""ToyExplorer: an ipywidgets panel that runs the four methods on a 2-D landscape and scrubs through their steps.

No math here: the panel reads its widgets into a ``RunSettings``, asks a ``workbench.toy.TrajectoryCache`` for the
trajectories (which reruns only the methods whose own settings changed) and hands them to
``workbench.viz.toy_figures``. What a change redraws depends on what it changes:

* the step slider (with its play button) and the focus method: ``update_step`` only, the step's own traces, which
  plotly.js draws again without redrawing the figure: cheap enough to follow the slider and Play;
* start point, ρ, α, lr, steps, the X-SAM switches, the v1 source: the affected methods are recomputed and
  ``update_trajectories`` redraws their paths and curves, not the contours;
* the landscape: its scenario (start and settings) is loaded into the widgets and the map is redrawn too.

The sliders that trigger a recomputation report on release (``continuous_update=False``). A click on the map
(on the landscape, a path or a minimum) moves the start point there. The scenario's story is shown as what it is,
a description of the scenario's own settings; when the widgets differ from them the panel says so, offers a button
back, and the status line gives the verdict for the settings shown.
"""

from __future__ import annotations

import html
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
from workbench.toy.cache import TrajectoryCache
from workbench.toy.landscapes import LANDSCAPES
from workbench.toy.scenarios import Scenario, scenario
from workbench.toy.trajectory import EIGENVECTOR_SOURCES, METHODS, RunSettings, Trajectory
from workbench.ui._widgets import fill_width
from workbench.viz.figure_update import FigureUpdate
from workbench.viz.toy_figures import (
    GRID_RESOLUTION,
    geometry_figure,
    landscape_changes,
    step_changes,
    trajectory_changes,
    update_step,
)

_LABEL_STYLE = {"description_width": "100px"}
_CLICKABLE = ("landscape", "minima", "path:")  # traces of the map whose click sets the start


def _slider_layout() -> widgets.Layout:
    """A new ``Layout`` per widget: widgets sharing one ``Layout`` share its ``display``, so hiding one hides all."""
    return widgets.Layout(width="330px")


class ToyExplorer:
    """The teaching explorer: controls on top, the story and the live verdict, the live ``geometry_figure`` below.

    Display it by leaving it as the last expression of a cell (or ``display(explorer)``).

    Args:
        landscape: a name in ``LANDSCAPES``; its scenario (``workbench.toy.SCENARIOS``) gives the landscape
            parameters and, where the next arguments are ``None``, the start, settings, focus and step.
        start: θ_0 (x, y).
        settings: the run settings.
        focus: the method whose step the inset shows (one of ``METHODS``).
        step: the step shown first.
        resolution: contour grid points per axis.

    Attributes:
        figure: the ``go.FigureWidget``.
        trajectories: the current ``Trajectory`` per method.
        cache: the ``TrajectoryCache`` behind them.
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
        self.cache = TrajectoryCache()
        self._build_controls(landscape)
        with self._holding():
            self._load(self._scenario.adjusted(start=start, focus=focus, step=step, **_fields_of(settings)))
        self.trajectories = self._run()
        self.figure = fill_width(
            geometry_figure(
                self._landscape,
                self.trajectories,
                rho=self._settings().rho,
                step=self.step_slider.value,
                focus=self.focus.value,
                resolution=resolution,
                widget=True,
            )
        )
        for trace in self.figure.data:
            if str(trace.meta).startswith(_CLICKABLE):
                trace.on_click(self._on_click)
        self._observe()
        self.widget = widgets.VBox(
            [self._controls(), self.story, self.status, self.figure], layout=widgets.Layout(width="100%")
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- widgets ------------------------------------------------------------------------------------------------

    def _build_controls(self, landscape: str) -> None:
        def slider(kind: type, description: str, **kwargs: Any) -> widgets.Widget:
            return kind(
                description=description,
                continuous_update=False,
                style=_LABEL_STYLE,
                layout=_slider_layout(),
                **kwargs,
            )

        self.landscape_box = widgets.Dropdown(
            options=list(LANDSCAPES), value=landscape, description="landscape", style=_LABEL_STYLE
        )
        self.start_x = slider(widgets.FloatSlider, "start x", step=0.01)
        self.start_y = slider(widgets.FloatSlider, "start y", step=0.01)
        self.rho = slider(widgets.FloatSlider, "ρ", min=0.01, max=0.5, step=0.01)
        self.lr = slider(widgets.FloatLogSlider, "lr", base=10, min=-3, max=-0.5, step=0.05, readout_format=".3g")
        self.steps = slider(widgets.IntSlider, "steps", min=10, max=400, step=10)
        self.eigen_alpha = slider(widgets.FloatSlider, "α Eigen-SAM", min=0.0, max=2.0, step=0.05)
        self.xsam_alpha = slider(widgets.FloatSlider, "α X-SAM", min=0.0, max=2.0, step=0.05)
        self.xsam_normalize = widgets.Checkbox(description="X-SAM unit direction (published)", indent=False)
        self.xsam_angle_gate = widgets.Checkbox(description="X-SAM only when ∠(g_adv, v) ≤ 90°", indent=False)
        self.xsam_orientation = widgets.Dropdown(
            options=list(ORIENTATIONS), description="X-SAM v sign", style=_LABEL_STYLE, layout=_slider_layout()
        )
        self.xsam_orientation.layout.width = "310px"
        self.eigenvector = widgets.ToggleButtons(
            options=list(EIGENVECTOR_SOURCES),
            description="v1 source",
            style={**_LABEL_STYLE, "button_width": "90px"},
            tooltips=["the exact Hessian's v1 before every step", "the tracker's power iteration, as published"],
        )
        self.freq = slider(widgets.IntSlider, "refresh every", min=1, max=50)
        self.power_iters = slider(widgets.IntSlider, "power iters", min=1, max=20)
        self.focus = widgets.ToggleButtons(
            options=list(METHODS), description="inset shows", style={**_LABEL_STYLE, "button_width": "90px"}
        )
        self.step_slider = widgets.IntSlider(description="step t", min=0, style=_LABEL_STYLE, layout=_slider_layout())
        self.play = widgets.Play(interval=150, min=0)
        widgets.jslink((self.play, "value"), (self.step_slider, "value"))
        self.restore = widgets.Button(
            description="back to the scenario", icon="undo", layout=widgets.Layout(width="200px"), disabled=True
        )
        self.restore.on_click(lambda _button: self.load_scenario())
        self.story = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))

    def _controls(self) -> widgets.Widget:
        def column(children: list[widgets.Widget]) -> widgets.VBox:
            return widgets.VBox(children, layout=widgets.Layout(margin="0 16px 0 0"))

        return widgets.VBox(
            [
                widgets.HBox([self.landscape_box, self.restore]),
                widgets.HBox(
                    [
                        column([self.start_x, self.start_y, self.rho, self.lr]),
                        column([self.steps, self.eigen_alpha, self.xsam_alpha, self.xsam_orientation]),
                        column([self.xsam_normalize, self.xsam_angle_gate, self.freq, self.power_iters]),
                    ],
                    layout=widgets.Layout(flex_flow="row wrap"),
                ),
                widgets.HBox([self.eigenvector, self.focus], layout=widgets.Layout(flex_flow="row wrap")),
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

    def load_scenario(self, name: str | None = None) -> None:
        """Load the scenario of landscape ``name`` (default: the current one) into the widgets and redraw: its
        start, settings, focus and step (what the "back to the scenario" button does)."""
        if name is not None and name != self.landscape_box.value:
            self.landscape_box.value = name  # observed: loads the new landscape's scenario
            return
        with self._holding():
            self._load(self._scenario)
        self._recompute()

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
        self._enable_power_controls()

    def _enable_power_controls(self) -> None:
        """The tracker's refresh period and power iterations act only with the "power" source: greyed out else."""
        exact = self.eigenvector.value == "exact"
        self.freq.disabled = self.power_iters.disabled = exact

    def _run(self) -> dict[str, Trajectory]:
        """The trajectories for the widgets' settings (from the cache where it can), with the story and status
        lines brought up to date."""
        started = time.perf_counter()
        settings = self._settings()
        trajectories = self.cache.trajectories(self._scenario_key(), self._landscape, self._start(), settings)
        elapsed = time.perf_counter() - started
        with self._holding():
            self.step_slider.max = self.play.max = settings.steps - 1
        self._show_story(settings)
        table = ending_table(self._landscape, trajectories)
        endings = "; ".join(
            f"<b>{row.method}</b> → {html.escape(row.ending)} (λ1 {row.lambda1:.3g})" for row in table.itertuples()
        )
        computed = self.cache.computed
        timing = (
            f"computed {', '.join(computed)} in {elapsed:.2f} s" if computed else "all four unchanged or remembered"
        )
        self.status.value = (
            f"<b>ends in</b> (with the settings above, last 10 steps): {endings} &nbsp; <i>({timing})</i>"
        )
        return trajectories

    def _show_story(self, settings: RunSettings) -> None:
        """The scenario's story, introduced as such, and what the widgets changed from the scenario."""
        chosen = self._scenario
        changes = [
            f"{name} {_shown(getattr(chosen.settings, name))} → {_shown(getattr(settings, name))}"
            for name in (field.name for field in fields(RunSettings))
            if getattr(settings, name) != getattr(chosen.settings, name)
        ]
        if self._start() != tuple(chosen.start):
            changes.insert(0, f"start {tuple(chosen.start)} → ({self._start()[0]:.2f}, {self._start()[1]:.2f})")
        self.restore.disabled = not changes
        note = (
            "<br><span style='color:#9a4d00'><b>You changed</b> "
            + html.escape("; ".join(changes))
            + ": the story describes the scenario, not these settings; the verdict below is for yours.</span>"
            if changes
            else ""
        )
        self.story.value = (
            f"<div style='line-height:1.45'><b>The scenario</b> (start {chosen.start}, "
            f"ρ = {chosen.settings.rho}, lr = {chosen.settings.lr}, {chosen.settings.steps} steps): "
            f"{html.escape(chosen.story)}{note}</div>"
        )

    def _scenario_key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        return (self._scenario.landscape, tuple(sorted(self._scenario.landscape_params.items())))

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
        self._recompute(landscape=True)

    def _on_settings(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        self._enable_power_controls()
        self._recompute()

    def _recompute(self, *, landscape: bool = False) -> None:
        """New trajectories for the widgets' settings; one update redraws the methods whose trajectory is not the
        one drawn, the step and, with ``landscape``, the contours."""
        drawn, self.trajectories = self.trajectories, self._run()
        update = FigureUpdate(self.figure)
        if landscape:
            landscape_changes(update, self._landscape, resolution=self._resolution)
        changed = [method for method, trajectory in self.trajectories.items() if drawn.get(method) is not trajectory]
        trajectory_changes(update, self.trajectories, changed)
        step_changes(
            update, self.trajectories, rho=self._settings().rho, step=self.step_slider.value, focus=self.focus.value
        )
        update.send()

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

    def _on_click(self, trace: go.BaseTraceType, points: Points, state: Any) -> None:
        """A click on the map (contours, a path or a minimum): start at the point clicked."""
        if not points.xs:
            return
        with self._holding():
            self.start_x.value, self.start_y.value = points.xs[0], points.ys[0]
        self._recompute()


def _shown(value: Any) -> str:
    """A setting as the story line writes it: floats to 3 significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


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
