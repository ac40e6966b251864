"""Every notebook runs headless in quick mode (papermill, as a batch would) and leaves its figures as static output;
the stored notebooks carry a papermill parameters cell and no outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
# Static figures each notebook must leave when run headless (01 belongs to another part: it is run if present).
EXPECTED_FIGURES = {"02_live_training": 1, "03_hessian_spectrum": 1, "04_loss_landscape": 5, "06_your_model": 3}


def test_the_ui_notebooks_are_present():
    assert set(EXPECTED_FIGURES) <= {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_stored_without_outputs_and_with_a_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "strip the outputs"
    parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "quick" in parameters[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_runs_headless_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    declared = nbformat.read(path, as_version=4)
    parameters = {"quick": True, "wait": True, "output_dir": str(tmp_path / "runs")}
    source = next(c.source for c in declared.cells if "parameters" in c.metadata.get("tags", []))
    parameters = {name: value for name, value in parameters.items() if f"{name} =" in source}
    output = tmp_path / path.name
    papermill.execute_notebook(  # without widget state: a FigureWidget's would add its 5 MB JavaScript bundle
        path, output, parameters=parameters, cwd=tmp_path, store_widget_state=False, progress_bar=False
    )
    executed = nbformat.read(output, as_version=4)
    outputs = [output for cell in executed.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], "errors or warnings"
    figures = sum(PLOTLY in o.get("data", {}) for o in outputs)
    assert figures >= EXPECTED_FIGURES.get(path.stem, 0)
