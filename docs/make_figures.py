"""Render the docs' figures as PNGs: ``docs/images/sam_geometry.png``, the explorer's main figure, and, given a
collected study folder, ``docs/images/mnist1d_study.png``, its seed-averaged curves (docs/REPRODUCTION.md).

The figure is the documented sharp-vs-flat scenario (``workbench.toy.scenarios``) as the notebook
``notebooks/01_sam_geometry.ipynb`` draws it. PNG export uses kaleido (``pip install kaleido``), which drives a
local Chrome or Chromium: the script looks for one on the PATH unless ``BROWSER_PATH`` names it
(Debian: ``apt-get install chromium``).

    python docs/make_figures.py [--out docs/images] [--study runs/mnist1d_study]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import torch

from workbench.toy import run_all, scenario
from workbench.viz.batch_figures import seed_curves, seed_curves_figure
from workbench.viz.toy_figures import FIGURE_HEIGHT, geometry_figure

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1300, FIGURE_HEIGHT  # pixels: the toy figure's own height; its width follows the page
VIEW = ((-1.25, 1.2), (-0.95, 1.05))  # both minima and the ridge, in the panel's aspect ratio
STUDY_GROUPS = ("sgd", "sam", "eigensam", "xsam", "xsam_unnormalized")
STUDY_METRICS = ("test_accuracy", "train_eval_loss", "lambda_1", "alignment_eps_v1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
    parser.add_argument("--study", type=Path, help="a collected batch folder (histories.parquet) to plot as well")
    args = parser.parse_args()
    if "BROWSER_PATH" not in os.environ:
        found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
        if found is None:
            raise SystemExit("no Chrome/Chromium found: install one or set BROWSER_PATH to its executable")
        os.environ["BROWSER_PATH"] = found
    torch.set_num_threads(1)  # 2-D problems: threads only add overhead
    chosen = scenario("sharp_flat")
    landscape = chosen.make_landscape()
    trajectories = run_all(landscape, chosen.start, chosen.settings)
    figure = geometry_figure(
        landscape, trajectories, rho=chosen.settings.rho, step=chosen.step, focus=chosen.focus, view=VIEW
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_png(figure, args.out / "sam_geometry.png")
    if args.study is not None:
        write_study_figure(args.study, args.out / "mnist1d_study.png")


def write_study_figure(study: Path, path: Path) -> None:
    """Mean ± std over seeds of test accuracy, training loss, λ1 and |cos∠(ε, v1)| per optimizer, log-scaled loss
    and λ1 (X-SAM's collapse spans four decades)."""
    histories = pd.read_parquet(study / "histories.parquet")
    histories = histories[histories.group.isin(STUDY_GROUPS)]
    figure = seed_curves_figure(
        seed_curves(histories, STUDY_METRICS), STUDY_METRICS, title="MNIST-1D MLP, 8 seeds: mean ± std"
    )
    figure.update_yaxes(type="log", row=1, col=2)
    figure.update_yaxes(type="log", row=2, col=1)
    figure.update_xaxes(title_text="step", row=2)
    write_png(figure, path)


def write_png(figure: go.Figure, path: Path) -> None:
    """``figure`` as a WIDTH × HEIGHT PNG at ``path``, reported with its size."""
    figure.write_image(path, width=WIDTH, height=HEIGHT)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
