"""Render the README's figures as PNGs: ``docs/images/sam_geometry.png``, the explorer's main figure.

The figure is the documented sharp-vs-flat scenario (``workbench.toy.scenarios``) as the notebook
``notebooks/01_sam_geometry.ipynb`` draws it. PNG export uses kaleido (``pip install kaleido``), which drives a
local Chrome or Chromium: the script looks for one on the PATH unless ``BROWSER_PATH`` names it
(Debian: ``apt-get install chromium``).

    python docs/make_figures.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import torch

from workbench.toy import run_all, scenario
from workbench.viz.toy_figures import geometry_figure

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1200, 650  # pixels; the figure's own layout height is 620
VIEW = ((-1.25, 1.2), (-0.95, 1.05))  # both minima and the ridge, in the panel's aspect ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
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
    path = args.out / "sam_geometry.png"
    figure.write_image(path, width=WIDTH, height=HEIGHT)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
