"""Weight norms of a batch's final checkpoints, mean ± std per group (docs/REPRODUCTION.md, X-SAM's collapse).

For every finished run folder of a collected batch: ‖θ‖ over all floating-point tensors of the model's state
(weights, biases, BatchNorm statistics if any) and ‖W‖ of its last weight matrix (the classifier head).

    python docs/checkpoint_norms.py runs/mnist1d_study
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from workbench.batch.records import FINISHED, PARAMS_FILE, run_state
from workbench.jsonfiles import read_json
from workbench.train.checkpoint import read_checkpoint
from workbench.train.run_folder import RunFolder


def checkpoint_norms(checkpoint: Path) -> dict[str, float]:
    """‖θ‖ and the last weight matrix's Frobenius norm of the model in a Trainer checkpoint."""
    state = read_checkpoint(checkpoint)["model"]
    tensors = [value.flatten().double() for value in state.values() if value.dtype.is_floating_point]
    head = [value for name, value in state.items() if name.endswith("weight")][-1]
    return {"weight_norm": torch.cat(tensors).norm().item(), "head_weight_norm": head.double().norm().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch", type=Path, help="a batch folder written by `workbench batch run`")
    args = parser.parse_args()
    rows = []
    for params in sorted(args.batch.glob(f"*/{PARAMS_FILE}")):
        if run_state(params.parent) == FINISHED:
            rows.append({"group": read_json(params)["group"], **checkpoint_norms(RunFolder(params.parent).checkpoint)})
    if not rows:
        raise SystemExit(f"{args.batch} holds no finished runs")
    table = pd.DataFrame(rows).groupby("group", sort=False).agg(["mean", "std", "count"])
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
