"""notebooks/01_sam_geometry.ipynb executes headless (papermill, quick mode) with a static figure and the ending table
(tests/test_notebooks.py runs it with the widget panel and checks how it is stored)."""

from __future__ import annotations

import json
import os
import re
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
    tables = ["".join(out["data"]["text/html"]) for out in outputs if "text/html" in out.get("data", {})]
    assert len(tables) == 1 and "basin" in tables[0] and "ending" in tables[0]  # the ending table
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", tables[0], re.S)]
    endings = {cells[0]: cells[-2:] for cells in rows if cells}  # method: [basin, ending]
    expected = {"GD": "sharp", "SAM": "sharp", "Eigen-SAM": "sharp", "X-SAM": "flat"}  # the split, in quick mode
    assert endings == {method: [basin, basin] for method, basin in expected.items()}
