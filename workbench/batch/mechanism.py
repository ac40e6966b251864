"""Tables of the λ1-mechanism study from runs that logged the step decomposition (``TrainConfig.probe_mechanism``).

Per probed step (``probe_steps``): the λ1 rate ⟨Δθ, ∇λ1⟩ of the update and the observed change of λ1, the parts of
the step direction's rate that g, Hε and r contribute, r's component along ∇λ1 and its Taylor term, the alignment
cos²∠(ε, v1) and the acute angle ∠(g, v1); with two normalised columns that compare across learning rates and
curvatures:

* ``rate_per_lr`` = ⟨Δθ, ∇λ1⟩ / lr (λ1 units per unit learning rate; negative: the step flattens);
* ``remainder_normalized`` κ = ⟨r, ∇λ1⟩ / (½‖ε‖²‖∇λ1‖²): the second-order Taylor term predicts κ = cos²∠(ε, v1)
  (``workbench.probes.mechanism``), so κ − cos² is what the expansion's cross terms (and beyond) add.

Per run (``mechanism_metrics``): agreement of predicted and observed λ1 changes, the share of the direction's λ1
rate from r (of the whole direction, and of SAM's own part Hε + r), and how much of κ the Taylor term explains;
per group and bucket of a column (``bucket_table``): counts, medians and means with standard errors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: What a probed step logs (``workbench.train.mechanism_probe``) and the step scalars the tables read beside it.
PROBE_COLUMNS = (
    "lambda_1_rate",
    "lambda_1_change",
    "lambda_1_rate_gradient",
    "lambda_1_rate_second_order",
    "lambda_1_rate_remainder",
    "remainder_along",
    "remainder_along_taylor",
    "lambda_1_gradient_norm",
    "lambda_1_relative_gap",
    "alignment_eps_v1",
    "angle_g_v1",
    "opt_perturbation_norm",
    "lr",
)
#: ``mechanism_metrics``'s keys, in order.
MECHANISM_METRICS = (
    "probes",
    "mean_rate_per_lr",
    "rate_change_correlation",
    "rate_change_slope",
    "remainder_share",
    "remainder_share_of_sam_part",
    "mean_remainder_normalized",
    "mean_alignment_squared",
    "taylor_share",
    "taylor_slope",
    "taylor_intercept",
    "taylor_correlation",
)


def probe_steps(history: pd.DataFrame) -> pd.DataFrame:
    """One row per probed step of a tidy history (columns step, epoch, metric, value) with ``PROBE_COLUMNS`` that
    were logged, ``rate_per_lr``, ``alignment_squared`` and ``remainder_normalized`` (NaN where not defined).
    Empty when the run did not log ``lambda_1_rate``."""
    rows = history[history.metric.isin(PROBE_COLUMNS)]
    table = rows.pivot_table(index="step", columns="metric", values="value", aggfunc="last")
    if "lambda_1_rate" not in table:
        return pd.DataFrame(columns=["step", *PROBE_COLUMNS])
    table = table.dropna(subset=["lambda_1_rate"]).reindex(columns=list(PROBE_COLUMNS)).reset_index()
    table["rate_per_lr"] = table.lambda_1_rate / table.lr
    table["alignment_squared"] = table.alignment_eps_v1**2
    scale = 0.5 * table.opt_perturbation_norm**2 * table.lambda_1_gradient_norm
    table["remainder_normalized"] = table.remainder_along / scale.where(scale > 0)
    return table


def mechanism_metrics(history: pd.DataFrame) -> dict[str, float]:
    """One run's mechanism summary (``MECHANISM_METRICS``; NaN where the run logged no decomposition):

    * ``mean_rate_per_lr``: mean of ⟨Δθ, ∇λ1⟩ / lr over the probes;
    * ``rate_change_correlation`` and ``rate_change_slope``: Pearson correlation of the first-order prediction
      ⟨Δθ, ∇λ1⟩ with the observed change of λ1 over the step, and the least-squares slope of change on prediction
      (1 where the first order is the whole story);
    * ``remainder_share``: Σ r-part / Σ (g + Hε + r parts) of the direction's λ1 rate (sums over probes, so that
      steps with a near-zero rate do not dominate); ``remainder_share_of_sam_part``: Σ r-part / Σ (Hε + r parts),
      r's share of what the perturbation adds to the plain gradient's rate;
    * ``mean_remainder_normalized`` (κ) against ``mean_alignment_squared`` (cos²), its Taylor prediction, and
      ``taylor_share`` = their ratio, mean cos² / mean κ: the share of r's normalised component along ∇λ1 that the
      second-order Taylor term accounts for (1 if it were the whole story; κ is normalised per probe, so steps
      with a large ‖∇λ1‖ do not dominate);
    * ``taylor_slope`` and ``taylor_intercept``: the least-squares line κ = slope·cos² + intercept over the probes
      (Taylor: 1 and 0; the intercept is what ε's components off v1 add on average), ``taylor_correlation``: the
      correlation of κ with cos².
    """
    table = probe_steps(history)
    values = dict.fromkeys(MECHANISM_METRICS, math.nan)
    values["probes"] = float(len(table))
    if table.empty:
        return values
    values["mean_rate_per_lr"] = float(table.rate_per_lr.mean())
    values["rate_change_correlation"] = _correlation(table.lambda_1_rate, table.lambda_1_change)
    rate = table.lambda_1_rate.to_numpy(float)
    if float(rate @ rate) > 0:
        values["rate_change_slope"] = float(rate @ table.lambda_1_change.to_numpy(float) / (rate @ rate))
    decomposed = table.dropna(subset=["lambda_1_rate_remainder"])
    if decomposed.empty:
        return values
    remainder = decomposed.lambda_1_rate_remainder.sum()
    second = decomposed.lambda_1_rate_second_order.sum()
    values["remainder_share"] = _ratio(remainder, remainder + second + decomposed.lambda_1_rate_gradient.sum())
    values["remainder_share_of_sam_part"] = _ratio(remainder, remainder + second)
    fitted = decomposed.dropna(subset=["remainder_normalized", "alignment_squared"])
    kappa, aligned = fitted.remainder_normalized, fitted.alignment_squared
    values["mean_remainder_normalized"] = float(kappa.mean())
    values["mean_alignment_squared"] = float(aligned.mean())
    values["taylor_share"] = _ratio(aligned.mean(), kappa.mean())
    if len(fitted) >= 3 and aligned.std() > 0:
        slope, intercept = np.polyfit(aligned.to_numpy(float), kappa.to_numpy(float), 1)
        values["taylor_slope"], values["taylor_intercept"] = float(slope), float(intercept)
    values["taylor_correlation"] = _correlation(kappa, aligned)
    return values


def bucket_table(
    probes: pd.DataFrame, column: str, edges: Sequence[float], *, by: str = "group"
) -> pd.DataFrame:
    """Probed steps of several runs (``probe_steps`` rows with a ``by`` column) grouped by ``by`` and by buckets
    ``[edges[i], edges[i+1])`` of ``column`` (the last bucket closed).

    Returns one row per group and bucket: ``bucket`` (its interval as text), ``probes``, the mean of ``column``,
    ``median_rate_per_lr`` (of the update) and the medians of the Hε and r parts of the direction's rate per unit
    lr (``median_second_order_rate_per_lr``, ``median_remainder_rate_per_lr``), ``mean_remainder_normalized`` with
    ``sem_remainder_normalized`` (standard error over the probes) beside ``mean_alignment_squared`` (κ's Taylor
    prediction), and ``remainder_descends``, the fraction of probes where r's part of the direction lowers λ1.

    Raises:
        ValueError: naming ``edges`` unless they are at least two increasing numbers.
    """
    edges = [float(edge) for edge in edges]
    if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"edges must be at least two increasing numbers, got {edges}")
    count = len(edges) - 1
    labels = [f"[{a:g}, {b:g}{']' if i == count - 1 else ')'}" for i, (a, b) in enumerate(itertools.pairwise(edges))]
    values = probes[column].to_numpy(float)
    index = np.searchsorted(edges, values, side="right") - 1
    index = np.where(values == edges[-1], count - 1, index)  # the last bucket is closed
    inside = (index >= 0) & (index < count)
    buckets = pd.Series([labels[i] if ok else None for i, ok in zip(index, inside, strict=True)], index=probes.index)
    rows = []
    for (group, bucket), part in probes.assign(bucket=buckets).dropna(subset=["bucket"]).groupby([by, "bucket"]):
        normalized = part.remainder_normalized.dropna()
        rows.append(
            {
                by: group,
                "bucket": bucket,
                "probes": len(part),
                f"mean_{column}": float(part[column].mean()),
                "median_rate_per_lr": float(part.rate_per_lr.median()),
                "median_second_order_rate_per_lr": float((part.lambda_1_rate_second_order / part.lr).median()),
                "median_remainder_rate_per_lr": float((part.lambda_1_rate_remainder / part.lr).median()),
                "mean_remainder_normalized": float(normalized.mean()) if len(normalized) else math.nan,
                "sem_remainder_normalized": float(normalized.std() / np.sqrt(len(normalized)))
                if len(normalized) > 1
                else math.nan,
                "mean_alignment_squared": float(part.alignment_squared.mean()),
                "remainder_descends": float((part.lambda_1_rate_remainder.dropna() < 0).mean())
                if part.lambda_1_rate_remainder.notna().any()
                else math.nan,
            }
        )
    table = pd.DataFrame(rows)
    order = {label: index for index, label in enumerate(labels)}
    groups = {group: index for index, group in enumerate(dict.fromkeys(probes[by]))}
    return table.sort_values([by, "bucket"], key=lambda s: s.map(groups if s.name == by else order)).reset_index(
        drop=True
    )


def _correlation(first: pd.Series, second: pd.Series) -> float:
    pairs = pd.concat([first, second], axis=1).dropna()
    if len(pairs) < 3 or pairs.iloc[:, 0].std() == 0 or pairs.iloc[:, 1].std() == 0:
        return math.nan
    return float(np.corrcoef(pairs.iloc[:, 0], pairs.iloc[:, 1])[0, 1])


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator != 0 else math.nan
