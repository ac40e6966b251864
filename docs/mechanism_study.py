"""The λ1-mechanism study's tables (docs/REPRODUCTION.md, "How each step moves λ1") from a collected batch.

Reads ``histories.parquet`` and ``results.parquet`` of a batch folder after ``workbench batch collect`` and writes,
into ``--output`` (and to the terminal):

    runs.csv            one row per finished run: group, seed, ``workbench.batch.mechanism.mechanism_metrics`` and
                        the final metrics of ``workbench.batch.records.run_metrics``
    summary.md          mean ± std over seeds per group
    comparison.md       every group against ``--reference``, paired by seed (``paired_comparison``)
    alignment.md        probed steps pooled per group, by buckets of cos²∠(ε, v1)
    angle.md            the same by buckets of the acute angle ∠(g, v1)

and with ``--figure PATH`` a PNG of four panels: κ against cos²∠(ε, v1) by bucket (the Taylor term predicts the
diagonal), the observed change of λ1 against its first-order prediction, and the seed-averaged logit norm and
adaptive sharpness over training (PNG export as in docs/make_figures.py: kaleido and a Chromium).

    python docs/mechanism_study.py runs/mechanism_study [--reference sam] [--output docs/results/mechanism_study]
        [--figure docs/images/mechanism_study.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.batch.comparison import paired_comparison
from workbench.batch.mechanism import MECHANISM_METRICS, bucket_table, mechanism_metrics, probe_steps
from workbench.batch.records import FINISHED, run_metrics
from workbench.viz import run_colors
from workbench.viz.batch_figures import seed_curves, seed_statistics
from workbench.viz.batch_report import format_comparison, markdown_table, statistics_markdown

#: Per-run metrics in the tables, in order (``mechanism_metrics`` and ``run_metrics`` names).
METRICS = (
    *[name for name in MECHANISM_METRICS if name != "probes"],
    "final_test_accuracy",
    "final_lambda_1",
    "final_adaptive_sharpness",
    "final_logit_norm",
    "final_weight_norm",
    "final_train_eval_loss",
)
ALIGNMENT_EDGES = (0.0, 0.01, 0.05, 0.2, 1.0)
ANGLE_EDGES = (0.0, 75.0, 85.0, 90.0)
BUCKET_COLUMNS = {
    "probes": "probed steps",
    "median_rate_per_lr": "median ⟨Δθ, ∇λ1⟩ / lr",
    "median_second_order_rate_per_lr": "median Hε part / lr",
    "median_remainder_rate_per_lr": "median r part / lr",
    "mean_remainder_normalized": "κ (mean ± s.e.)",
    "mean_alignment_squared": "mean cos²∠(ε, v1)",
    "remainder_descends": "r lowers λ1",
}


def run_table(batch: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per finished run with its metrics, the probed steps of every run with group and seed)."""
    runs = pd.read_parquet(batch / "results.parquet")
    histories = pd.read_parquet(batch / "histories.parquet")
    finished = runs[runs.state == FINISHED]
    rows, probes = [], []
    for run in finished.itertuples():
        history = histories[histories.run == run.run]
        rows.append({"run": run.run, "group": run.group, "seed": run.seed, **mechanism_metrics(history),
                     **run_metrics(history)})  # fmt: skip
        probes.append(probe_steps(history).assign(group=run.group, seed=run.seed))
    return pd.DataFrame(rows), pd.concat(probes, ignore_index=True)


def bucket_markdown(table: pd.DataFrame, title: str) -> str:
    """A ``bucket_table`` as Markdown: group, bucket, then ``BUCKET_COLUMNS`` (κ with its standard error)."""
    shown = pd.DataFrame({"group": table.group, title: table.bucket})
    for column, heading in BUCKET_COLUMNS.items():
        shown[heading] = [f"{value:.4g}" if isinstance(value, float) else value for value in table[column]]
    shown[BUCKET_COLUMNS["mean_remainder_normalized"]] = [
        f"{mean:.3f} ± {error:.3f}"
        for mean, error in zip(table.mean_remainder_normalized, table.sem_remainder_normalized, strict=True)
    ]
    return markdown_table(shown)


def write_figure(probes: pd.DataFrame, histories: pd.DataFrame, path: Path) -> None:
    """The four panels of the module docstring as a 1200 × 800 PNG at ``path``."""
    if "BROWSER_PATH" not in os.environ and (found := shutil.which("chromium")):
        os.environ["BROWSER_PATH"] = found
    groups = list(dict.fromkeys(probes.group))
    colors = run_colors(groups)
    figure = make_subplots(rows=2, cols=2, horizontal_spacing=0.1, vertical_spacing=0.14, subplot_titles=(
        "κ = ⟨r, ∇λ1⟩ / (½‖ε‖²‖∇λ1‖²) by cos²∠(ε, v1) bucket (diagonal: Taylor)",
        "observed Δλ1 over the probed step vs ⟨Δθ, ∇λ1⟩ (diagonal: first order)",
        "mean logit norm on the probe batch (mean ± std over seeds)",
        "adaptive sharpness, ρ = 0.1 (mean over seeds)"))  # fmt: skip
    buckets = bucket_table(probes, "alignment_squared", ALIGNMENT_EDGES)
    rates = probes[["lambda_1_rate", "lambda_1_change"]].to_numpy(float)
    limit = float(np.nanpercentile(np.abs(rates), 98))
    curves = seed_curves(histories, ("logit_norm", "adaptive_sharpness"))
    for group in groups:
        style = {"color": colors[group]}
        part = buckets[buckets.group == group]
        figure.add_trace(go.Scatter(x=part.mean_alignment_squared, y=part.mean_remainder_normalized, name=group,
                                    legendgroup=group, mode="lines+markers", line=style,
                                    error_y={"type": "data", "array": part.sem_remainder_normalized}), 1, 1)
        mine = probes[probes.group == group]
        figure.add_trace(go.Scatter(x=mine.lambda_1_rate, y=mine.lambda_1_change, mode="markers", showlegend=False,
                                    legendgroup=group, marker={**style, "size": 3, "opacity": 0.5}), 1, 2)
        for column, metric in ((1, "logit_norm"), (2, "adaptive_sharpness")):
            curve = curves[(curves.group == group) & (curves.metric == metric)]
            error = {"type": "data", "array": curve["std"]} if metric == "logit_norm" else None
            figure.add_trace(go.Scatter(x=curve.step, y=curve["mean"], error_y=error, mode="lines", line=style,
                                        showlegend=False, legendgroup=group), 2, column)
    diagonal = {"color": "gray", "dash": "dash", "width": 1}
    figure.add_trace(go.Scatter(x=[0, 0.45], y=[0, 0.45], mode="lines", line=diagonal, showlegend=False), 1, 1)
    figure.add_trace(go.Scatter(x=[-limit, limit], y=[-limit, limit], mode="lines", line=diagonal,
                                showlegend=False), 1, 2)  # fmt: skip
    figure.update_xaxes(range=[-limit, limit], row=1, col=2)
    figure.update_yaxes(range=[-limit, limit], row=1, col=2)
    figure.update_yaxes(type="log", row=2, col=2)
    figure.update_xaxes(title_text="mean cos²∠(ε, v1) of the bucket", row=1, col=1)
    figure.update_xaxes(title_text="step", row=2)
    figure.update_layout(template="plotly_white", legend={"orientation": "h", "y": -0.08}, margin={"t": 40})
    for annotation in figure.layout.annotations:
        annotation.font.size = 12
    figure.write_image(path, width=1200, height=800)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch", type=Path, help="a collected batch folder (histories.parquet, results.parquet)")
    parser.add_argument("--reference", default="sam", help="the group every other group is paired with")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results/mechanism_study")
    parser.add_argument("--figure", type=Path, help="also write the study's figure as a PNG there")
    args = parser.parse_args()
    runs, probes = run_table(args.batch)
    if runs.empty:
        raise SystemExit(f"{args.batch} holds no finished runs; run `workbench batch collect` after the batch")
    args.output.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.output / "runs.csv", index=False)
    texts = {
        "summary.md": statistics_markdown(seed_statistics(runs, METRICS), METRICS),
        "comparison.md": markdown_table(format_comparison(
            paired_comparison(runs, METRICS, reference=args.reference), args.reference)),
        "alignment.md": bucket_markdown(bucket_table(probes, "alignment_squared", ALIGNMENT_EDGES), "cos²∠(ε, v1)"),
        "angle.md": bucket_markdown(bucket_table(probes, "angle_g_v1", ANGLE_EDGES), "∠(g, v1) [°]"),
    }  # fmt: skip
    for name, text in texts.items():
        (args.output / name).write_text(text)
        print(f"## {name}\n\n{text}")
    if args.figure is not None:
        write_figure(probes, pd.read_parquet(args.batch / "histories.parquet"), args.figure)


if __name__ == "__main__":
    main()
