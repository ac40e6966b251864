"""The training dashboard: choose a run, Start / Pause / Stop / Reset it, and watch its curves move.

Layout: the run's settings (dataset, model, optimizer, lr, ρ, α, freq, probe interval, seed, length), the
control buttons, a run-directory field with Save and Open, a status line (step, epoch, steps/s, device) and
the live chart (``LiveCharts``). Training runs on a ``LiveRun``'s worker thread, which also redraws the chart
(throttled) through a Trainer callback; the buttons only call ``LiveRun`` methods. Finished runs stay on the
chart for comparison until Clear. No math here.

Every button has a method of the same name (``start``, ``pause``, ``resume``, ``stop``, ``reset``, ``save``,
``open``), so notebooks run the same dashboard headless (``start(); join()``) and show ``figure()``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
import torch

from workbench.datasets import DATASETS, DatasetSplits, load_dataset
from workbench.live.custom import CustomSetup
from workbench.live.live_run import LiveRun, run_label
from workbench.live.snapshot import ModelSnapshot
from workbench.losses import BatchLoss, ModelLoss
from workbench.models import MODELS
from workbench.optim import OPTIMIZERS, optimizer_entry
from workbench.train import TrainConfig, TrainEvent
from workbench.train.evaluate import Metrics
from workbench.train.run_folder import RunFolder
from workbench.ui._widgets import Panel, error_html, set_values
from workbench.ui.charts import DEFAULT_BUDGET, DEFAULT_MAX_POINTS, DEFAULT_MIN_INTERVAL, LiveCharts
from workbench.viz import summary_table
from workbench.viz.curves import with_uncertainty
from workbench.viz.training_figures import dashboard_panels, training_figure

_STYLE = {"description_width": "82px"}
_FIELD = widgets.Layout(width="190px")
_HIDDEN = widgets.Layout(width="190px", visibility="hidden")
_BUTTON = widgets.Layout(width="110px")
_SETTINGS = ("dataset", "model", "optimizer", "seed", "lr", "rho", "alpha", "freq", "epochs", "steps", "probe_every")
_SHARPNESS = ("rho", "alpha", "freq")
_CUSTOMIZABLE = ("dataset", "model")  # hidden when the user brings their own
_STATE_EVENTS = ("pause", "resume", "end", "error")
_LENGTH = ("epochs", "steps", "probe_every")
_SETTING_NOTES = "<i>steps 0: train for the epochs · probe every 0: no probes</i>"


class TrainingDashboard(Panel):
    """Widgets around a ``LiveRun`` and a ``LiveCharts``; display it by leaving it last in a cell.

    Args:
        config: the starting settings; fields without a widget (batch size, probe batch, schedule, options of
            the dataset and model, ...) are taken from it for every run.
        runs_dir: if given, every run writes its run directory (``run-NNN``) there as it trains.
        panels: opt-in rows of the chart (keys of ``workbench.viz.OPTIONAL_PANELS``: ``"mechanism"``, the step
            decomposition, ``"scale"``, adaptive sharpness and norms); default both when ``config.probe_mechanism``
            is on, else none.
        max_points, min_interval, budget: the chart's thinning and throttling (see ``LiveCharts``).

    Attributes:
        run: the current ``LiveRun`` (None before the first Start).
        compared: label → history of earlier runs kept on the chart for comparison.
        charts: the ``LiveCharts``; ``widget``: the whole panel.
    """

    # bad settings, a missing run folder, a button pressed at the wrong moment: all go to the status line
    shown_errors = (ValueError, FileNotFoundError, RuntimeError)

    def __init__(
        self,
        config: TrainConfig,
        *,
        runs_dir: str | Path | None = None,
        setup: CustomSetup | None = None,
        panels: Sequence[str] | None = None,
        max_points: int = DEFAULT_MAX_POINTS,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        budget: float = DEFAULT_BUDGET,
    ) -> None:
        self.setup = setup
        if setup is not None and setup.train_data is not None:
            config = config.replace(dataset=None, dataset_options={})
        if setup is not None and setup.model is not None:
            config = config.replace(model=None, model_options={})
        self.base = config
        self.runs_dir = None if runs_dir is None else Path(runs_dir)
        if panels is None:
            panels = ("mechanism", "scale") if config.probe_mechanism else ()
        self.charts = LiveCharts(
            max_points=max_points,
            min_interval=min_interval,
            budget=budget,
            on_redraw=self._show_status,
            panels=dashboard_panels(panels),
        )
        self.run: LiveRun | None = None
        self.compared: dict[str, pd.DataFrame] = {}
        self._data: dict[str, DatasetSplits] = {}
        self._runs_started = 0
        self.controls = self._build_controls()
        self.buttons = {
            name: widgets.Button(description=name.capitalize(), button_style=style, icon=icon, layout=_BUTTON)
            for name, style, icon in (
                ("start", "success", "play"),
                ("pause", "", "pause"),
                ("stop", "danger", "stop"),
                ("reset", "warning", "undo"),
                ("save", "", "save"),
                ("open", "", "folder-open"),
                ("clear", "", "trash"),
            )
        }
        self.buttons["clear"].description = "Clear comparisons"
        self.buttons["clear"].layout = widgets.Layout(width="170px")
        self.run_dir = widgets.Text(
            description="run dir", placeholder="runs/my-run", style=_STYLE, layout=widgets.Layout(width="300px")
        )
        self.keep = widgets.Checkbox(value=True, description="keep ended runs for comparison", indent=False)
        self.status = widgets.HTML(value="ready: choose the settings and press Start")
        actions: dict[str, Callable[[], Any]] = {
            "start": self.start,
            "pause": self._toggle_pause,
            "stop": self.stop,
            "reset": self.reset,
            "save": lambda: self.save(self.run_dir.value),
            "open": lambda: self.open(self.run_dir.value),
            "clear": self.clear_comparisons,
        }
        for name, action in actions.items():
            self.buttons[name].on_click(lambda _button, action=action: self._guarded(action))
        self.controls["optimizer"].observe(self._optimizer_changed, names="value")
        for name in _CUSTOMIZABLE:  # brought by the user: no choice to offer
            if getattr(config, name) is None:
                self.controls[name].layout = widgets.Layout(display="none")
        self.show_config(config)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.controls[name] for name in ("dataset", "model", "optimizer", "seed")]),
                widgets.HBox([self.controls[name] for name in ("lr", "rho", "alpha", "freq")]),
                widgets.HBox([*(self.controls[name] for name in _LENGTH), widgets.HTML(_SETTING_NOTES)]),
                widgets.HBox([self.buttons[name] for name in ("start", "pause", "stop", "reset")]),
                widgets.HBox([self.run_dir, self.buttons["save"], self.buttons["open"]]),
                widgets.HBox([self.keep, self.buttons["clear"]]),
                self.status,
                self.charts.figure,
            ]
        )
        self._sync_buttons()

    # -- settings ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _build_controls() -> dict[str, widgets.ValueWidget]:
        optimizer_choices = [(entry.title, name) for name, entry in OPTIMIZERS.items()]
        tooltips = {"freq": "steps between v1 refreshes", "steps": "0: train for epochs", "probe_every": "0: no probes"}
        controls: dict[str, widgets.ValueWidget] = {
            "dataset": widgets.Dropdown(options=DATASETS, description="dataset"),
            "model": widgets.Dropdown(options=MODELS, description="model"),
            "optimizer": widgets.Dropdown(options=optimizer_choices, description="optimizer"),
        }
        for name, title in (("rho", "ρ"), ("alpha", "α"), ("lr", "lr")):
            controls[name] = widgets.FloatText(description=title)
        for name, title in (("seed", "seed"), ("freq", "freq"), ("epochs", "epochs"), ("steps", "steps")):
            controls[name] = widgets.IntText(description=title)
        controls["probe_every"] = widgets.IntText(description="probe every")
        for name, control in controls.items():
            control.style, control.layout = _STYLE, _FIELD
            control.tooltip = tooltips.get(name)
        return controls

    def show_config(self, config: TrainConfig) -> None:
        """Put ``config``'s values in the widgets (ρ, α, freq: the optimizer's defaults where it says None)."""
        self.controls["optimizer"].value = config.optimizer
        defaults = optimizer_entry(config.optimizer).defaults()
        for name in _SETTINGS:
            value = getattr(config, name)
            if name in _CUSTOMIZABLE and value is None:
                continue
            if name in _SHARPNESS:
                value = defaults.get(name, 0) if value is None else value
            elif name in ("steps", "probe_every"):
                value = value or 0
            self.controls[name].value = value

    def _optimizer_changed(self, change: dict[str, Any]) -> None:
        """A new optimizer shows its paper defaults for ρ, α and freq, and greys out those it does not take."""
        defaults = optimizer_entry(change["new"]).defaults()
        for name in _SHARPNESS:
            self.controls[name].value = defaults.get(name, 0)
        self._sync_buttons()

    def config(self) -> TrainConfig:
        """The settings in the widgets as a validated ``TrainConfig`` (the other fields from the base config).

        ρ, α and freq are None (the optimizer's paper default) when they show that default or the optimizer does
        not take them; steps and probe interval 0 mean "by epochs" and "no probes".

        Raises:
            ValueError: naming the setting and its allowed values.
        """
        values = {name: self.controls[name].value for name in _SETTINGS}
        for name in _CUSTOMIZABLE:
            if getattr(self.base, name) is None:
                values[name] = None
        defaults = optimizer_entry(values["optimizer"]).defaults()
        for name in _SHARPNESS:
            if name not in defaults or values[name] == defaults[name]:
                values[name] = None
        values["steps"] = values["steps"] or None
        values["probe_every"] = values["probe_every"] or None
        if values["dataset"] != self.base.dataset:
            values["dataset_options"] = {}
        if values["model"] != self.base.model:
            values["model_options"] = {}
        return self.base.replace(**values)

    def set(self, **settings: Any) -> None:
        """Set widgets by config field name, ``optimizer`` first (it resets ρ, α and freq to its defaults). None
        means what it means in the config: no limit on steps, no probes, the paper default for ρ, α, freq.

        Raises:
            ValueError: for a name without a widget.
        """
        if "optimizer" in settings:
            set_values(self.controls, {"optimizer": settings["optimizer"]})
        defaults = optimizer_entry(self.controls["optimizer"].value).defaults()
        values = {name: defaults.get(name, 0) if value is None else value for name, value in settings.items()}
        set_values(self.controls, values)

    # -- actions ------------------------------------------------------------------------------------------------------

    def start(self, **settings: Any) -> LiveRun:
        """Start a run from the widgets (after applying ``settings``, see ``set``), or continue a reopened one
        whose settings were left unchanged. A previous run is put aside (kept for comparison if ticked).

        Raises:
            ValueError: for bad settings, or while a run is going (pause it, stop it or reset first).
        """
        self.set(**settings)
        config = self.config()
        if self.run is not None and self.run.running:
            raise ValueError(f"run {self.run.label!r} is {self.run.status}; stop or reset it before starting another")
        if self.run is None or self.run.status != "ready" or self.run.config != config:
            self._put_aside()
            self._runs_started += 1
            label = self._unique_label(run_label(config))
            run_dir = None if self.runs_dir is None else self._new_run_dir(self.runs_dir)
            self.run = LiveRun(
                config,
                data=self._dataset(config),
                setup=self.setup,
                run_dir=run_dir,
                label=label,
                callbacks=[self._on_event],
            )
            self.charts.follow(self.run.label, self.run.history)
        self.run.start()
        self._sync_buttons()
        self._show_status()
        return self.run

    def _new_run_dir(self, runs_dir: Path) -> Path:
        """The next ``runs_dir/run-NNN`` that holds nothing yet (runs of an earlier session are never replaced)."""
        while RunFolder(runs_dir / f"run-{self._runs_started:03d}").entries():
            self._runs_started += 1
        return runs_dir / f"run-{self._runs_started:03d}"

    def pause(self) -> None:
        """Hold the run after its current step."""
        self._current().pause()
        self._sync_buttons()

    def resume(self) -> None:
        """Continue a paused run."""
        self._current().resume()
        self._sync_buttons()

    def stop(self) -> None:
        """End the run after its current step; its curves and history stay."""
        self._current().stop()
        self._sync_buttons()

    def reset(self) -> None:
        """Stop the run, put it aside (kept for comparison if ticked) and get ready for a new one."""
        self._put_aside()
        self.run = None
        self._sync_buttons()
        self.status.value = "ready: choose the settings and press Start"

    def join(self, timeout: float | None = None) -> None:
        """Wait until the current run ends (at most ``timeout`` seconds): for notebooks run headless."""
        self._current().join(timeout)

    def save(self, run_dir: str | Path) -> Path:
        """Save the current run as it is now to ``run_dir`` (reopen it with ``open``).

        Raises:
            ValueError: for an empty path or when there is no run.
        """
        if not str(run_dir).strip():
            raise ValueError("run dir is empty: type the directory to save the run to")
        path = self._current().save(Path(run_dir).expanduser())
        self.status.value = f"saved {html.escape(self._current().label)} to {html.escape(str(path))}"
        return path

    def open(self, run_dir: str | Path) -> None:
        """Reopen a saved run: with a checkpoint it becomes the current run (Start continues it, the explorers can
        measure it); with only a history it is overlaid for comparison.

        Raises:
            ValueError: for an empty path or a directory with neither checkpoint.pt nor history.csv.
        """
        if not str(run_dir).strip():
            raise ValueError("run dir is empty: type the directory of a saved run")
        folder = RunFolder(Path(str(run_dir).strip()).expanduser())
        path = folder.path
        if folder.has_checkpoint():
            if self.run is not None and self.run.running:
                raise ValueError(
                    f"run {self.run.label!r} is {self.run.status}; stop or reset it before opening another"
                )
            self._put_aside()
            label = self._unique_label(path.name)
            run = LiveRun.open(path, setup=self.setup, callbacks=[self._on_event], label=label)
            self.base = run.config
            self.show_config(run.config)
            self.run = run
            self.charts.follow(run.label, run.history)
            self._sync_buttons()
            self._show_status()
        elif folder.has_history():
            label = self._unique_label(path.name)
            self.compared[label] = folder.read_history().to_frame()
            self.charts.show_run(label, self.compared[label])
            self.status.value = f"overlaid {html.escape(label)} (history only: no checkpoint to continue from)"
        else:
            raise ValueError(
                f"{str(path)!r} is not a saved run: it has neither {folder.checkpoint.name} nor {folder.history.name}"
            )

    def clear_comparisons(self) -> None:
        """Remove the runs kept for comparison from the chart."""
        for label in self.compared:
            self.charts.remove_run(label)
        self.compared.clear()

    def snapshot(self) -> ModelSnapshot:
        """A copy of the current run's model between two steps (for the spectrum and landscape explorers)."""
        return self._current().snapshot()

    # -- results -----------------------------------------------------------------------------------------------------

    def runs(self) -> dict[str, pd.DataFrame]:
        """Label → history of every run on the chart: the compared ones, then the current one."""
        runs = dict(self.compared)
        if self.run is not None:
            runs[self.run.label] = self.run.history.to_frame()
        return runs

    def figure(self, *, title: str = "") -> go.Figure:
        """The chart as a static figure (what a notebook run headless shows)."""
        return training_figure(
            self.runs(),
            title=title,
            max_points=self.charts.max_points,
            colors=self.charts.colors(),
            panels=self.charts.panels,
            widths=self.charts.widths(),
        )

    def summary(self) -> pd.DataFrame:
        """One row per run: final and best test accuracy, final λ1 and trace, mean angles."""
        return summary_table(self.runs())

    # -- internals ---------------------------------------------------------------------------------------------------

    def _current(self) -> LiveRun:
        if self.run is None:
            raise ValueError("there is no run yet: press Start (or open a saved run) first")
        return self.run

    def _toggle_pause(self) -> None:
        run = self._current()
        if run.pause_requested:
            self.resume()
        else:
            self.pause()

    def _put_aside(self) -> None:
        if self.run is None:
            return
        run = self.run
        run.stop()
        run.join()
        if self.keep.value and run.trainer.step > 0:
            self.compared[run.label] = run.history.to_frame()
            self.charts.show_run(run.label, self.compared[run.label])
        else:
            self.charts.remove_run(run.label)

    def _unique_label(self, label: str) -> str:
        taken = set(self.compared) | ({self.run.label} if self.run is not None else set())
        unique, copy = label, 1
        while unique in taken:
            copy += 1
            unique = f"{label} #{copy}"
        return unique

    def _dataset(self, config: TrainConfig) -> DatasetSplits | None:
        if config.dataset is None:  # the user's own data
            return None
        key = json.dumps([config.dataset, config.dataset_options, config.seed], sort_keys=True, default=str)
        if key not in self._data:
            self._data[key] = load_dataset(config.dataset, seed=config.seed, **config.dataset_options)
        return self._data[key]

    def _on_event(self, event: TrainEvent) -> None:
        """Trainer callback, on the training thread: redraw when due (always at start, pause and end)."""
        if event.kind == "boundary":
            return
        self.charts.refresh(force=event.kind in _STATE_EVENTS or event.kind == "start")  # redraws the status too
        if event.kind in _STATE_EVENTS:
            self._sync_buttons()

    def _show_status(self) -> None:
        run = self.run
        if run is None:
            return
        trainer = run.trainer
        rate = run.steps_per_second
        parts = [
            f"<b>{html.escape(run.label)}</b>",
            run.status,
            f"step {trainer.step} / {trainer.total_steps}",
            f"epoch {trainer.epoch:.2f}",
        ]
        if run.status == "running":  # a paused or ended run has no current speed
            parts.append(f"{rate:.1f} steps/s" if math.isfinite(rate) else "– steps/s")
        trace = run.history.last("trace")
        if math.isfinite(trace):
            parts.append(f"tr(H) {with_uncertainty(trace, run.history.last('trace_stderr'))}")
        parts.append(f"device {trainer.device}")
        if run.error is not None:
            parts.append(error_html(repr(run.error)))
        elif run.ended:
            parts.append(html.escape(trainer.reason))
        self.status.value = " · ".join(parts)

    def _sync_buttons(self) -> None:
        """Enable what makes sense now (called from either thread)."""
        run = self.run
        going = run is not None and run.running
        self.buttons["start"].disabled = going
        self.buttons["pause"].disabled = not going
        self.buttons["stop"].disabled = not going
        self.buttons["reset"].disabled = run is None
        self.buttons["save"].disabled = run is None
        paused = going and run.pause_requested
        self.buttons["pause"].description = "Resume" if paused else "Pause"
        self.buttons["pause"].icon = "play" if paused else "pause"
        taken = optimizer_entry(self.controls["optimizer"].value).option_names
        for name, control in self.controls.items():
            control.disabled = going
            if name in _SHARPNESS:  # options the optimizer does not take are hidden, not shown as 0
                control.layout = _FIELD if name in taken else _HIDDEN


def training_dashboard(
    config: TrainConfig | None = None,
    *,
    runs_dir: str | Path | None = None,
    model: torch.nn.Module | str | None = None,
    train_data: Iterable[Any] | None = None,
    test_data: Iterable[Any] | None = None,
    loss_fn: ModelLoss | BatchLoss | None = None,
    metrics_fn: Metrics | None = None,
    probe_data: Any = None,
    panels: Sequence[str] | None = None,
    **settings: Any,
) -> TrainingDashboard:
    """The training dashboard in one line: ``training_dashboard(optimizer="sam", lr=0.05)``, or on your own model
    and data: ``training_dashboard(model=net, train_data=loader, test_data=test_loader, loss_fn=my_loss)``.

    Args:
        config: a base ``TrainConfig`` (default: ``TrainConfig()``, MNIST-1D with the 1-D CNN).
        runs_dir: directory each run writes its run directory into as it trains (default: none, save by hand).
        model, train_data, test_data, loss_fn, metrics_fn, probe_data: your own, as for ``Trainer``; every run
            starts from ``model``'s weights as they are now (the model itself is never trained). A ``model`` given as
            text is the name of a registered model, as in ``TrainConfig``.
        panels: opt-in rows of the chart, as for ``TrainingDashboard``: ``training_dashboard(probe_mechanism=True)``
            shows the step decomposition and the scale probes.
        **settings: any ``TrainConfig`` field, overriding ``config``.

    Raises:
        ValueError: for an unknown field or a bad value, naming it.
    """
    if isinstance(model, str):  # a registered model's name: a TrainConfig setting like the others
        settings["model"], model = model, None
    base = TrainConfig.from_dict({**(config or TrainConfig()).to_dict(), **settings})
    own = {"model": model, "train_data": train_data, "test_data": test_data, "loss_fn": loss_fn,
           "metrics_fn": metrics_fn, "probe_data": probe_data}  # fmt: skip
    setup = None if model is None and train_data is None else CustomSetup(**own)
    if setup is None and any(value is not None for value in own.values()):
        raise ValueError("test_data, loss_fn, metrics_fn and probe_data go with your own model= or train_data=")
    return TrainingDashboard(base, runs_dir=runs_dir, setup=setup, panels=panels)
