"""The spectrum explorer: top-k eigenvalues, SLQ density and trace of a saved or live model, with uncertainty.

Press Measure: the explorer takes a snapshot of its source (a saved run, or the live model between two
steps), calls ``workbench.live.measure.measure_spectrum`` on a background thread and draws
``workbench.viz.spectrum_figures.spectrum_figure``. No math here.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from workbench._checks import check_int
from workbench.live.measure import Spectrum, measure_spectrum
from workbench.live.snapshot import ModelSnapshot, Source, load_snapshot, snapshot_of
from workbench.live.tasks import BackgroundTask
from workbench.ui._widgets import Panel, fill_width
from workbench.ui.charts import replace_figure
from workbench.viz.spectrum_figures import spectrum_figure

_STYLE = {"description_width": "110px"}
_SLIDER = widgets.Layout(width="330px")


def eigenvalue_table(spectrum: Spectrum) -> pd.DataFrame:
    """One row per eigenpair: index i, λᵢ and the residual bound ‖H vᵢ − λᵢ vᵢ‖ (λᵢ's distance to the spectrum)."""
    return pd.DataFrame(
        {
            "i": range(1, len(spectrum.eigen.eigenvalues) + 1),
            "λᵢ": spectrum.eigen.eigenvalues.double().cpu().numpy(),
            "± residual bound": spectrum.eigen.residuals.double().cpu().numpy(),
        }
    )


class SpectrumExplorer(Panel):
    """Widgets for ``measure_spectrum``; display it by leaving it last in a cell.

    Args:
        source: a run directory or checkpoint (loaded once), a ``LiveRun`` or training dashboard (a new snapshot
            at every Measure), a ``Trainer`` that is not running, or a ``ModelSnapshot``.
        top_k, slq_runs, lanczos_steps, trace_samples, seed: the starting values (see ``measure_spectrum``).

    Attributes:
        result: the last ``Spectrum`` measured (None before the first).
    """

    def __init__(
        self,
        source: Source,
        *,
        top_k: int = 5,
        slq_runs: int = 10,
        lanczos_steps: int = 80,
        trace_samples: int = 99,
        seed: int = 0,
    ) -> None:
        top_k = check_int("top_k", top_k, minimum=1, maximum=20)
        slq_runs = check_int("slq_runs", slq_runs, minimum=2)
        lanczos_steps = check_int("lanczos_steps", lanczos_steps, minimum=2)
        trace_samples = check_int("trace_samples", trace_samples, minimum=6)
        self.source: Source = load_snapshot(source) if isinstance(source, str | Path) else source
        self.result: Spectrum | None = None
        self.controls = {  # slider ranges: the checks above, with room to grow beyond the starting values
            "top_k": widgets.IntSlider(value=top_k, min=1, max=20, description="top k"),
            "slq_runs": widgets.IntSlider(value=slq_runs, min=2, max=max(50, slq_runs), description="SLQ runs"),
            "lanczos_steps": widgets.IntSlider(
                value=lanczos_steps, min=2, max=max(300, lanczos_steps), description="Lanczos steps"
            ),
            "trace_samples": widgets.IntSlider(
                value=trace_samples, min=6, max=max(600, trace_samples), description="trace HVPs"
            ),
            "seed": widgets.IntText(value=seed, description="seed"),
        }
        for control in self.controls.values():
            control.style, control.layout = _STYLE, _SLIDER
        self.button = widgets.Button(description="Measure", button_style="primary", icon="calculator")
        self.button.on_click(lambda _button: self._guarded(self.measure))
        self.status = widgets.HTML(value="press Measure")
        self.table = widgets.HTML()
        self.plot = fill_width(go.FigureWidget(layout={"template": "plotly_white", "height": 420}))
        self.task = BackgroundTask("spectrum explorer", on_error=self._show_error)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.controls["top_k"], self.controls["slq_runs"], self.controls["seed"]]),
                widgets.HBox([self.controls["lanczos_steps"], self.controls["trace_samples"], self.button]),
                self.status,
                self.plot,
                self.table,
            ]
        )

    def measure(self, *, wait: bool = False, **settings: Any) -> None:
        """Measure the source's current model with the widgets' settings (after applying ``settings``, see
        ``set``) on a background thread; ``wait``: until done, re-raising its error.

        Raises:
            ValueError: for an unknown setting, or while a measurement is running.
        """
        self.set(**settings)
        if self.task.busy:
            raise ValueError("a measurement is running; wait for it")
        settings = {name: control.value for name, control in self.controls.items()}
        self.button.disabled = True
        self.status.value = "taking a snapshot…"
        self.task.start(lambda _cancelled: self._measure(settings))
        if wait:
            self.task.join()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running measurement (re-raising its error)."""
        self.task.join(timeout)

    def figure(self) -> go.Figure:
        """The last measurement as a static figure.

        Raises:
            ValueError: before the first measurement.
        """
        if self.result is None:
            raise ValueError("nothing measured yet: press Measure (or call measure(wait=True)) first")
        return spectrum_figure(self.result)

    def _measure(self, settings: dict[str, int]) -> None:
        snapshot: ModelSnapshot = snapshot_of(self.source)
        self.status.value = f"measuring {html.escape(snapshot.label)} (step {snapshot.step})…"
        result = measure_spectrum(snapshot, **settings)
        self.result = result
        replace_figure(self.plot, spectrum_figure(result))
        self.table.value = eigenvalue_table(result).to_html(index=False, float_format=lambda value: f"{value:.5g}")
        hvps = result.eigen.num_hvps + result.trace.num_hvps + result.density.num_hvps
        self.status.value = (
            f"{html.escape(result.label)} at step {result.step}: {hvps} Hessian-vector products in "
            f"{result.seconds:.1f} s{'' if result.eigen.converged else ' (Lanczos not converged: see the bounds)'}"
        )
        self.button.disabled = False

    def _show_error(self, error: Exception) -> None:
        super()._show_error(error)
        self.button.disabled = False


def spectrum_explorer(source: Source, **settings: Any) -> SpectrumExplorer:
    """The spectrum explorer in one line: ``spectrum_explorer("runs/sam")`` or ``spectrum_explorer(dashboard)``.

    Args:
        source: see ``SpectrumExplorer``.
        **settings: top_k, slq_runs, lanczos_steps, trace_samples, seed.
    """
    return SpectrumExplorer(source, **settings)
