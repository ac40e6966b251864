"""notebooks/01_sam_geometry.ipynb executes headless (papermill, quick mode) and renders a static figure."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_sam_geometry.ipynb"


def test_notebook_runs_headless_in_quick_mode(tmp_path, monkeypatch):
    # the kernel imports this checkout's workbench, whatever the environment has installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    output = tmp_path / "executed.ipynb"
    started = time.perf_counter()
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(output),
        parameters={"quick": True, "interactive": False, "focus": "X-SAM"},
        cwd=str(NOTEBOOK.parent),
        kernel_name="python3",
        store_widget_state=False,
        progress_bar=False,
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"quick mode took {elapsed:.0f} s"
    cells = json.loads(output.read_text())["cells"]
    outputs = [out for cell in cells if cell["cell_type"] == "code" for out in cell.get("outputs", [])]
    figures = [out for out in outputs if "application/vnd.plotly.v1+json" in out.get("data", {})]
    assert len(figures) == 1
    tables = ["".join(out["data"]["text/plain"]) for out in outputs if "text/html" in out.get("data", {})]
    assert len(tables) == 1 and "basin" in tables[0]  # the ending table, one row per method
    assert all(method in tables[0] for method in ("GD", "SAM", "Eigen-SAM", "X-SAM"))


def test_notebook_is_stored_without_outputs_and_has_a_parameters_cell():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(not cell["outputs"] and cell["execution_count"] is None for cell in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])
