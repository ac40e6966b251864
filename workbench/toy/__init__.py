"""Teaching toys: analytic 2-D landscapes and the SAM family's exact geometry on them.

``make_landscape`` builds a landscape (``LANDSCAPES``), ``run_all`` / ``run_trajectory`` step GD and the
``workbench.optim`` optimizers on it and record every step (``Trajectory``), ``ending_table`` says which basin each
run ended in, and ``SCENARIOS`` hold start points and settings that each show one point.
"""

from workbench.toy.basins import basin_name, ending_table, flow_to_minimum
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
from workbench.toy.trajectory import METHODS, RunSettings, Trajectory, run_all, run_trajectory

__all__ = [
    "LANDSCAPES",
    "METHODS",
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
    "basin_name",
    "ending_table",
    "flow_to_minimum",
    "make_landscape",
    "run_all",
    "run_trajectory",
    "scenario",
]
