"""Live runs without widgets: a training run on a worker thread, model snapshots, trajectories, background tasks
and the measurements the explorers show. ``workbench.ui`` wires these to widgets; notebooks run headless and
scripts can use them directly."""

from workbench.live.custom import CustomSetup
from workbench.live.live_run import LiveRun, run_label
from workbench.live.measure import Spectrum, landscape_directions, measure_spectrum
from workbench.live.snapshot import ModelSnapshot, load_snapshot, snapshot_of
from workbench.live.tasks import BackgroundTask
from workbench.live.trajectory import Trajectory, TrajectoryRecorder

__all__ = [
    "BackgroundTask",
    "CustomSetup",
    "LiveRun",
    "ModelSnapshot",
    "Spectrum",
    "Trajectory",
    "TrajectoryRecorder",
    "landscape_directions",
    "load_snapshot",
    "measure_spectrum",
    "run_label",
    "snapshot_of",
]
