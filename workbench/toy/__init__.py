"""Teaching toys: analytic 2-D landscapes and the SAM family's exact geometry on them.

``make_landscape`` builds a landscape (``LANDSCAPES``), ``run_all`` / ``run_trajectory`` step GD and the
``workbench.optim`` optimizers on it and record every step (``Trajectory``), ``ending_table`` says which basin each
run ended in (or that it keeps crossing between two), ``SCENARIOS`` hold start points and settings that each show
one point, and ``TrajectoryCache`` recomputes only the methods a change of settings affects.
"""

from workbench.toy.basins import basin_name, ending_table, flow_to_minimum
from workbench.toy.cache import TrajectoryCache
from workbench.toy.landscapes import (
    LANDSCAPES,
    AnisotropicQuadratic,
    CurvedValley,
    GaussianWells,
    Landscape,
    Minimum,
    SharpFlatBasins,
    make_landscape,
)
from workbench.toy.scenarios import SCENARIOS, Scenario, scenario
from workbench.toy.trajectory import METHOD_SETTINGS, METHODS, RunSettings, Trajectory, run_all, run_trajectory

__all__ = [
    "LANDSCAPES",
    "METHODS",
    "METHOD_SETTINGS",
    "SCENARIOS",
    "AnisotropicQuadratic",
    "CurvedValley",
    "GaussianWells",
    "Landscape",
    "Minimum",
    "RunSettings",
    "Scenario",
    "SharpFlatBasins",
    "Trajectory",
    "TrajectoryCache",
    "basin_name",
    "ending_table",
    "flow_to_minimum",
    "make_landscape",
    "run_all",
    "run_trajectory",
    "scenario",
]
