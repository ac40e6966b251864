"""The mechanism study's tables from synthetic histories: per-step normalisations, per-run shares and agreement,
buckets (the last one closed), and runs that logged no decomposition."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench.batch.mechanism import bucket_table, mechanism_metrics, probe_steps


def history(probes: list[dict[str, float]], *, every: int = 10) -> pd.DataFrame:
    """A tidy history: a probe row set every ``every`` steps, with lr and ‖ε‖ logged at every step."""
    rows = []
    for index, values in enumerate(probes):
        step = index * every
        for extra in range(every):
            rows += [(step + extra, "lr", 0.1), (step + extra, "opt_perturbation_norm", 0.05)]
        rows += [(step, metric, value) for metric, value in values.items()]
    return pd.DataFrame([(s, s / 10, m, v) for s, m, v in rows], columns=["step", "epoch", "metric", "value"])


def probe(rate: float, change: float, parts: tuple[float, float, float], along: float, taylor: float,
          alignment: float, angle: float) -> dict[str, float]:  # fmt: skip
    gradient, second, remainder = parts
    return {"lambda_1_rate": rate, "lambda_1_change": change, "lambda_1_rate_gradient": gradient,
            "lambda_1_rate_second_order": second, "lambda_1_rate_remainder": remainder, "remainder_along": along,
            "remainder_along_taylor": taylor, "lambda_1_gradient_norm": 2.0, "lambda_1_relative_gap": 0.1,
            "alignment_eps_v1": alignment, "angle_g_v1": angle}  # fmt: skip


PROBES = [
    probe(-0.02, -0.018, (-0.010, -0.006, -0.004), 0.004, 0.001, 0.5, 60.0),
    probe(-0.01, -0.011, (-0.008, -0.001, -0.001), 0.001, 0.002, 0.2, 80.0),
    probe(0.01, 0.012, (0.006, 0.002, 0.0), 0.0, 0.0005, 0.1, 89.0),
    probe(-0.005, -0.004, (-0.004, 0.0, -0.001), 0.002, 0.0005, 0.1, 90.0),
]


def test_probe_steps_normalise_by_lr_and_by_the_taylor_scale():
    table = probe_steps(history(PROBES))
    assert list(table.step) == [0, 10, 20, 30]
    assert table.rate_per_lr.tolist() == pytest.approx([-0.2, -0.1, 0.1, -0.05])
    assert table.alignment_squared.tolist() == pytest.approx([0.25, 0.04, 0.01, 0.01])
    scale = 0.5 * 0.05**2 * 2.0  # ½‖ε‖²‖∇λ1‖ with ‖∇λ1‖ = 2
    assert table.remainder_normalized.tolist() == pytest.approx([0.004 / scale, 0.001 / scale, 0.0, 0.002 / scale])


def test_run_metrics_are_ratios_of_sums_and_correlations():
    metrics = mechanism_metrics(history(PROBES))
    assert metrics["probes"] == 4 and metrics["mean_rate_per_lr"] == pytest.approx(-0.0625)
    assert metrics["remainder_share"] == pytest.approx(-0.006 / -0.027)
    assert metrics["remainder_share_of_sam_part"] == pytest.approx(-0.006 / -0.011)
    kappa = [0.004 / 0.0025, 0.001 / 0.0025, 0.0, 0.002 / 0.0025]  # ⟨r, ∇λ1⟩/‖∇λ1‖ over ½‖ε‖²‖∇λ1‖
    aligned = [0.25, 0.04, 0.01, 0.01]
    assert metrics["mean_remainder_normalized"] == pytest.approx(sum(kappa) / 4)
    assert metrics["taylor_share"] == pytest.approx(sum(aligned) / sum(kappa))
    x_mean, y_mean = sum(aligned) / 4, sum(kappa) / 4
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(aligned, kappa, strict=True)) / sum(
        (x - x_mean) ** 2 for x in aligned
    )
    assert metrics["taylor_slope"] == pytest.approx(slope)
    assert metrics["taylor_intercept"] == pytest.approx(y_mean - slope * x_mean)
    assert 0.95 < metrics["rate_change_correlation"] <= 1 and metrics["rate_change_slope"] == pytest.approx(
        (0.02 * 0.018 + 0.01 * 0.011 + 0.01 * 0.012 + 0.005 * 0.004) / (0.02**2 + 0.01**2 + 0.01**2 + 0.005**2)
    )
    assert metrics["mean_alignment_squared"] == pytest.approx(0.0775)


def test_runs_without_the_decomposition_or_the_probe_give_nan():
    plain = [{key: value for key, value in row.items() if key in ("lambda_1_rate", "lambda_1_change")}
             for row in PROBES]  # fmt: skip
    metrics = mechanism_metrics(history(plain))
    assert metrics["probes"] == 4 and not math.isnan(metrics["rate_change_correlation"])
    assert math.isnan(metrics["remainder_share"]) and math.isnan(metrics["taylor_share"])
    empty = mechanism_metrics(history([{"lambda_1": 1.0}]))
    assert empty["probes"] == 0 and math.isnan(empty["mean_rate_per_lr"])


def test_buckets_group_and_close_the_last_interval():
    probes = pd.concat(
        [probe_steps(history(PROBES)).assign(group="sam"), probe_steps(history(PROBES[:2])).assign(group="eigensam")]
    )
    table = bucket_table(probes, "angle_g_v1", [0, 75, 85, 90])
    assert list(zip(table.group, table.bucket, table.probes, strict=True)) == [
        ("sam", "[0, 75)", 1), ("sam", "[75, 85)", 1), ("sam", "[85, 90]", 2),
        ("eigensam", "[0, 75)", 1), ("eigensam", "[75, 85)", 1)]  # fmt: skip
    last = table.iloc[2]
    assert last.median_rate_per_lr == pytest.approx(0.025) and last.remainder_descends == pytest.approx(0.5)
    assert last.mean_alignment_squared == pytest.approx(0.01)
    with pytest.raises(ValueError, match="edges must be at least two increasing numbers"):
        bucket_table(probes, "angle_g_v1", [0, 90, 45])
