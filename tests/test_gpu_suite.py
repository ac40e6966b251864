"""benchmarks/gpu_suite.py runs on a CPU with --tiny and prints its one markdown block with every section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_suite_runs_tiny_on_the_cpu():
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "benchmarks/gpu_suite.py", "--device", "cpu", "--tiny"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = completed.stdout
    assert report.startswith("## GPU suite: CPU") and "not a measurement" in report
    for heading in ("### 1. Curvature", "### 2. Optimizer steps", "### 3. Landscape", "### 4. Training"):
        assert heading in report
    assert "failed" not in report
    assert report.count("| finished |") == 4  # one short epoch per optimizer
    steps = [line for line in report.splitlines() if line.startswith(("| float32 |", "| bfloat16 autocast |"))]
    assert len(steps) == 14 and all(line.split("|")[-2].strip().startswith("0 /") for line in steps)  # no host reads
