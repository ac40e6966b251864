"""The lean install: the core imports nothing from Jupyter, plotly or papermill; extras hold the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
CORE_MODULES = (
    "workbench",
    "workbench.optim",
    "workbench.curvature",
    "workbench.probes",
    "workbench.train",
    "workbench.datasets",
    "workbench.models",
    "workbench.cli",
)
# pandas imports pyarrow by itself when it is installed, so pyarrow (an extra) is not checked here.
HEAVY = ("IPython", "ipykernel", "ipywidgets", "jupyterlab", "jupyter_server", "plotly", "papermill", "nbclient",
         "anywidget", "tensorboard", "dask", "distributed")  # fmt: skip


def test_importing_the_core_imports_no_notebook_plotting_or_batch_package():
    code = (
        "import sys\n"
        f"import {', '.join(CORE_MODULES)}\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]", completed.stdout


def test_core_dependencies_leave_notebooks_batches_and_tracking_to_extras():
    project = PYPROJECT["project"]
    core = " ".join(project["dependencies"])
    assert not any(name.lower() in core.lower() for name in HEAVY)
    extras = project["optional-dependencies"]
    assert {"viz", "notebooks", "batch", "tensorboard", "docs", "bench", "all", "dev"} <= set(extras)
    assert any(requirement.startswith("papermill") for requirement in extras["batch"])
    assert any(requirement.startswith("dask[distributed]") for requirement in extras["batch"])
    assert any(requirement.startswith("jupyterlab") for requirement in extras["notebooks"])
    assert "workbench[all]" in extras["dev"]  # the README's test command installs everything
    assert project["license"] == "MIT"  # an SPDX expression, not the deprecated table
