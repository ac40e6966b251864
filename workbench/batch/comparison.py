"""Paired comparison of every group against a reference group, seed by seed.

Runs that share a seed share the initial weights, the batch order and the split, so the differences between two
optimizers are far less noisy per seed than the spread of either over seeds. For each group, metric and the seeds
both groups finished: the mean and sample std of ``group − reference``, on how many seeds the group's value is
higher, and the two-sided p-value of a paired t-test (``scipy.stats.ttest_rel``; NaN with fewer than 2 pairs).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from scipy import stats

from workbench._checks import check_choice

COMPARISON_COLUMNS = ("group", "metric", "pairs", "mean_difference", "std_difference", "higher", "p_value")


def paired_comparison(
    runs: pd.DataFrame,
    metrics: Sequence[str],
    *,
    reference: str,
    by: str = "group",
    pair_on: str = "seed",
) -> pd.DataFrame:
    """Every group but ``reference`` against it, paired on ``pair_on``.

    Args:
        runs: one row per finished run with the ``by`` and ``pair_on`` columns and the ``metrics`` columns.
        metrics: metric columns to compare (a metric a group never logged, e.g. SGD's alignment, is left out).
        reference: the group every other group is compared with.

    Returns:
        One row per (group, metric) with ``COMPARISON_COLUMNS``: ``pairs`` seeds where both values are finite,
        ``mean_difference``/``std_difference`` of group − reference in the metric's units, ``higher`` the number of
        those seeds where the group's value is the larger, ``p_value`` of the paired t-test.

    Raises:
        ValueError: naming ``reference`` when it is not one of the groups.
    """
    groups = list(dict.fromkeys(runs[by]))
    check_choice("reference", reference, groups)
    rows = []
    for metric in metrics:
        table = runs.pivot_table(index=pair_on, columns=by, values=metric, aggfunc="mean", dropna=False)
        for group in groups:
            if group == reference or group not in table or reference not in table:
                continue
            pairs = table[[group, reference]].dropna()
            if pairs.empty:
                continue
            difference = pairs[group] - pairs[reference]
            p_value = stats.ttest_rel(pairs[group], pairs[reference]).pvalue if len(pairs) > 1 else float("nan")
            rows.append(
                {
                    "group": group,
                    "metric": metric,
                    "pairs": len(pairs),
                    "mean_difference": float(difference.mean()),
                    "std_difference": float(difference.std()),
                    "higher": int((difference > 0).sum()),
                    "p_value": float(p_value),
                }
            )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
