"""A tiny stand-in batch notebook and grid files for the batch tests (kernels start fast: no torch inside).

The notebook fakes a Trainer's run directory (history.csv and summary.json). It raises when ``seed`` is
``FAILING_SEED``, sleeps ``steps / 10`` seconds before writing anything (so a test can kill a batch mid-run),
records one evaluation (train_eval_loss 1.0, test accuracy ``seed / 100``), and notes in summary.json its
kernel's ``OMP_NUM_THREADS``, where ``workbench`` would be imported from and its ``$WORKBENCH_DATA``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_notebook

FAILING_SEED = 13

_PARAMETERS = """run_dir = "."
seed = 0
steps = None"""

_BODY = f"""import importlib.util
import json
import os
import pathlib
import time

if seed == {FAILING_SEED}:
    raise RuntimeError(f"seed {{seed}} fails on purpose")
time.sleep((steps or 0) / 10)
folder = pathlib.Path(run_dir)
(folder / "history.csv").write_text(
    f"step,epoch,metric,value\\n0,0.0,train_eval_loss,1.0\\n0,0.0,test_accuracy,{{seed / 100}}\\n"
)
summary = {{"status": "finished", "reason": "fake", "steps": 1, "seconds": 0.0, "config": {{"seed": seed}}}}
source = importlib.util.find_spec("workbench").origin
summary["kernel"] = {{"threads": os.environ.get("OMP_NUM_THREADS"), "workbench": source}}
summary["data_root"] = os.environ.get("WORKBENCH_DATA")
(folder / "summary.json").write_text(json.dumps(summary))"""


def write_fake_notebook(path: Path) -> Path:
    """Write the stand-in notebook to ``path`` and return it."""
    notebook = new_notebook(
        cells=[new_code_cell(_PARAMETERS, metadata={"tags": ["parameters"]}), new_code_cell(_BODY)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(notebook, path)
    return path


def write_grid(folder: Path, **sections: Any) -> Path:
    """A grid file in ``folder`` running the stand-in notebook (written next to it) with ``sections``."""
    notebook = write_fake_notebook(folder / "fake.ipynb")
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({"notebook": notebook.name, **sections}))
    return path
