"""Scripted search behind the documented sharp-vs-flat scenario (``workbench.toy.scenarios``).

On ``SharpFlatBasins()`` with its default parameters, find starts, ρ and lr where SAM and a variant (Eigen-SAM or
X-SAM, several α) end in different basins, robustly:

1. coarse: every method from a grid of starts, for a grid of ρ and lr. A run has "ended" in a basin when the
   basin (gradient-flow attraction, ``workbench.toy.basins``) of its positions at 1/2, 3/4 and all of the steps
   agree and λ1 at its last point is within 5 % of that basin minimum's λ1 (inside a basin λ1 is the basin's own;
   a run parked on the ridge between the basins, or cycling across it, has another); otherwise "unsettled".
2. refine: the splits found (SAM in one basin, the variant in the other), those where SAM ends in the sharp basin
   and the variant in the flat one first, at most ``--refine`` of them, are run again from the 3 × 3 starts around
   each (spacing ``--spacing``) with twice the steps; a split is robust when all 9 agree.

The landscape is symmetric under y → −y, so the starts lie in y ≥ 0.

    OMP_NUM_THREADS=1 python docs/search_sharp_flat_start.py --out /tmp/sharp_flat_search.csv

Runs on the CPU in two processes.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from workbench.toy.basins import flow_to_minimum
from workbench.toy.landscapes import SharpFlatBasins
from workbench.toy.trajectory import RunSettings, run_trajectory

VARIANTS = {
    "SAM": ("SAM", {}),
    "Eigen-SAM a=0.2": ("Eigen-SAM", {"eigen_alpha": 0.2}),
    "Eigen-SAM a=1": ("Eigen-SAM", {"eigen_alpha": 1.0}),
    "X-SAM a=0.2": ("X-SAM", {"xsam_alpha": 0.2}),
    "X-SAM a=0.5": ("X-SAM", {"xsam_alpha": 0.5}),
    "X-SAM a=0.2 normalized": ("X-SAM", {"xsam_alpha": 0.2, "xsam_normalize": True}),
}
SETTLED_TOLERANCE = 0.05  # relative distance of the final λ1 from the basin minimum's λ1

Job = tuple[float, float, float, float, str, int]


def run_one(job: Job) -> dict[str, object]:
    """One run (x, y, ρ, lr, variant, steps); returns its row."""
    torch.set_num_threads(1)
    x, y, rho, lr, variant, steps = job
    method, overrides = VARIANTS[variant]
    landscape = SharpFlatBasins()
    settings = replace(RunSettings(rho=rho, lr=lr, steps=steps), **overrides)
    trajectory = run_trajectory(landscape, (x, y), method, settings)
    basins = flow_to_minimum(landscape, trajectory.positions[[steps // 2, 3 * steps // 4, steps]])
    inside = abs(trajectory.top_eigenvalues[-1] / landscape.minima[basins[-1]].sharpness - 1) <= SETTLED_TOLERANCE
    settled = len(set(basins.tolist())) == 1 and inside
    return {
        "x": x,
        "y": y,
        "rho": rho,
        "lr": lr,
        "variant": variant,
        "steps": steps,
        "basin": landscape.minima[basins[-1]].name if settled else "unsettled",
    }


def run_jobs(jobs: list[Job]) -> pd.DataFrame:
    with multiprocessing.Pool(2) as pool:
        return pd.DataFrame(pool.map(run_one, jobs, chunksize=8))


def splits(table: pd.DataFrame) -> pd.DataFrame:
    """Rows (ρ, lr, x, y, variant, SAM's basin, the variant's basin) where both settled in different basins."""
    wide = table.pivot_table(index=["rho", "lr", "x", "y"], columns="variant", values="basin", aggfunc="first")
    found = []
    for key, row in wide.iterrows():
        for variant in VARIANTS:
            ends = (row["SAM"], row[variant])
            if variant != "SAM" and "unsettled" not in ends and ends[0] != ends[1]:
                found.append((*key, variant, *ends))
    return pd.DataFrame(found, columns=["rho", "lr", "x", "y", "variant", "sam_basin", "variant_basin"])


def refine(candidates: pd.DataFrame, spacing: float, steps: int) -> pd.DataFrame:
    """For each candidate, how many of the 3 × 3 starts around it (with ``steps``) show the same split."""
    offsets = [(dx * spacing, dy * spacing) for dx, dy in itertools.product((-1, 0, 1), repeat=2)]
    jobs = sorted(
        {
            (round(c.x + dx, 4), round(c.y + dy, 4), c.rho, c.lr, variant, steps)
            for c in candidates.itertuples()
            for dx, dy in offsets
            for variant in ("SAM", c.variant)
        }
    )
    runs = run_jobs(jobs).set_index(["rho", "lr", "x", "y", "variant"])["basin"]
    support = []
    for c in candidates.itertuples():
        starts = [(round(c.x + dx, 4), round(c.y + dy, 4)) for dx, dy in offsets]
        support.append(
            sum(
                runs[(c.rho, c.lr, x, y, "SAM")] == c.sam_basin
                and runs[(c.rho, c.lr, x, y, c.variant)] == c.variant_basin
                for x, y in starts
            )
        )
    return candidates.assign(support=support)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sharp_flat_search.csv", help="CSV of the refined splits")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rho", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--lr", type=float, nargs="+", default=[0.02, 0.04])
    parser.add_argument("--xs", type=float, nargs=3, default=[-1.4, -0.6, 5], metavar=("LOW", "HIGH", "COUNT"))
    parser.add_argument("--ys", type=float, nargs=3, default=[0.2, 1.2, 3], metavar=("LOW", "HIGH", "COUNT"))
    parser.add_argument("--refine", type=int, default=8, help="most splits refined")
    parser.add_argument("--spacing", type=float, default=0.02, help="neighbourhood spacing of the refine stage")
    args = parser.parse_args()
    xs = np.round(np.linspace(args.xs[0], args.xs[1], int(args.xs[2])), 4)
    ys = np.round(np.linspace(args.ys[0], args.ys[1], int(args.ys[2])), 4)
    coarse = run_jobs(
        [
            (float(x), float(y), rho, lr, variant, args.steps)
            for rho, lr, x, y, variant in itertools.product(args.rho, args.lr, xs, ys, VARIANTS)
        ]
    )
    print(coarse.groupby(["variant", "basin"]).size().unstack(fill_value=0).to_string())
    candidates = splits(coarse)
    print(f"{len(candidates)} splits on the coarse grid; refining each on 9 starts with {2 * args.steps} steps")
    story_first = candidates.assign(story=(candidates.sam_basin == "sharp") & (candidates.variant_basin == "flat"))
    story_first = story_first.sort_values("story", ascending=False, kind="stable").drop(columns="story")
    refined = refine(story_first.head(args.refine), args.spacing, 2 * args.steps).sort_values(
        "support", ascending=False
    )
    refined.to_csv(args.out, index=False)
    print(refined.to_string(index=False))


if __name__ == "__main__":
    main()
