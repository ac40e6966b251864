"""The λ1-mechanism study's tables (docs/REPRODUCTION.md, "How each step moves λ1") from a collected batch.

Reads ``histories.parquet`` and ``results.parquet`` of a batch folder after ``workbench batch collect`` and writes,
into ``--output`` (and to the terminal):

    runs.csv            one row per finished run: group, seed, ``workbench.batch.mechanism.mechanism_metrics`` and
                        the final metrics of ``workbench.batch.records.run_metrics``
    summary.md          mean ± std over seeds per group
    comparison.md       every group against ``--reference``, paired by seed (``paired_comparison``)
    alignment.md        probed steps pooled per group, by buckets of cos²∠(ε, v1)
    angle.md            the same by buckets of the acute angle ∠(g, v1)

    python docs/mechanism_study.py runs/mechanism_study [--reference sam] [--output docs/results/mechanism_study]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from workbench.batch.comparison import paired_comparison
from workbench.batch.mechanism import MECHANISM_METRICS, bucket_table, mechanism_metrics, probe_steps
from workbench.batch.records import FINISHED, run_metrics
from workbench.viz.batch_figures import seed_statistics
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
    "mean_remainder_normalized": "κ = ⟨r, ∇λ1⟩ / (½‖ε‖²‖∇λ1‖²)",
    "mean_alignment_squared": "mean cos²∠(ε, v1) (Taylor: κ)",
    "remainder_descends": "probes where r lowers λ1",
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


def bucket_markdown(table: pd.DataFrame, column: str, title: str) -> str:
    shown = table.rename(columns={**BUCKET_COLUMNS, "bucket": title}).drop(columns=[f"mean_{column}"], errors="ignore")
    kappa = BUCKET_COLUMNS["mean_remainder_normalized"]
    shown[kappa] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(table.mean_remainder_normalized,
                                                      table.sem_remainder_normalized, strict=True)]  # fmt: skip
    shown = shown.drop(columns=["sem_remainder_normalized"])
    return markdown_table(shown.map(lambda value: f"{value:.4g}" if isinstance(value, float) else value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch", type=Path, help="a collected batch folder (histories.parquet, results.parquet)")
    parser.add_argument("--reference", default="sam", help="the group every other group is paired with")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results/mechanism_study")
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
        "alignment.md": bucket_markdown(bucket_table(probes, "alignment_squared", ALIGNMENT_EDGES),
                                        "alignment_squared", "cos²∠(ε, v1)"),
        "angle.md": bucket_markdown(bucket_table(probes, "angle_g_v1", ANGLE_EDGES), "angle_g_v1", "∠(g, v1) [°]"),
    }  # fmt: skip
    for name, text in texts.items():
        (args.output / name).write_text(text)
        print(f"## {name}\n\n{text}")


if __name__ == "__main__":
    main()
