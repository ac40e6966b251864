"""ipywidgets panels that wire the training engine, the probes and the figures together live; no math."""

from workbench.live.live_run import LiveRun
from workbench.live.measure import landscape_directions, measure_spectrum
from workbench.live.snapshot import ModelSnapshot, load_snapshot, snapshot_of
from workbench.ui.charts import LiveCharts
from workbench.ui.dashboard import TrainingDashboard, training_dashboard
from workbench.ui.landscape import LandscapeExplorer, landscape_explorer
from workbench.ui.spectrum import SpectrumExplorer, eigenvalue_table, spectrum_explorer
from workbench.ui.toy_explorer import ToyExplorer, toy_explorer

__all__ = [
    "LandscapeExplorer",
    "LiveCharts",
    "LiveRun",
    "ModelSnapshot",
    "SpectrumExplorer",
    "ToyExplorer",
    "TrainingDashboard",
    "eigenvalue_table",
    "landscape_directions",
    "landscape_explorer",
    "load_snapshot",
    "measure_spectrum",
    "snapshot_of",
    "spectrum_explorer",
    "toy_explorer",
    "training_dashboard",
]
