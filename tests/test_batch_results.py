"""Run records, statistics over seeds, the batch figures and report, and notebook 05's parameters."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

from workbench.batch import config_from_parameters, paired_comparison
from workbench.batch.records import run_metrics, run_state
from workbench.jsonfiles import write_json
from workbench.runs import QUICK_DEMO_CHANGES
from workbench.train import TrainConfig
from workbench.viz.batch_figures import seed_curves, seed_curves_figure, seed_statistics, seed_summary_figure
from workbench.viz.batch_report import format_comparison, format_statistics, statistics_markdown, write_batch_report

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_reproduce_papers.ipynb"


def history(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    """A tidy history with epoch = step / 10."""
    records = [(step, step / 10, metric, value) for step, metric, value in rows]
    return pd.DataFrame(records, columns=["step", "epoch", "metric", "value"])


def test_run_metrics_take_last_values_means_and_acute_optimizer_angles():
    frame = history(
        [
            (0, "test_accuracy", 0.5), (10, "test_accuracy", 0.8), (20, "test_accuracy", 0.7),
            (0, "train_eval_loss", 2.0), (10, "train_eval_loss", 1.0), (20, "train_eval_loss", 0.5),
            (20, "train_accuracy", 1.0), (0, "lambda_1", 4.0), (20, "lambda_1", 2.0),
            (0, "alignment_eps_v1", 0.1), (20, "alignment_eps_v1", 0.3),
            (0, "opt_angle_descent_eigenvector", 100.0), (1, "opt_angle_descent_eigenvector", 60.0),
        ]
    )  # fmt: skip
    metrics = run_metrics(frame)
    assert metrics["final_test_accuracy"] == 0.7 and metrics["best_test_accuracy"] == 0.8
    assert metrics["generalization_gap"] == pytest.approx(0.3)
    assert metrics["final_lambda_1"] == 2.0 and metrics["mean_lambda_1"] == 3.0
    assert metrics["mean_alignment_eps_v1"] == pytest.approx(0.2)
    assert metrics["mean_opt_angle_descent_eigenvector"] == pytest.approx(70.0)  # 100° folds to 80°
    assert math.isnan(metrics["final_trace"]) and math.isnan(metrics["mean_angle_g_v1"])


def test_records_are_valid_json_and_decide_the_state(tmp_path):
    folder = tmp_path / "run"
    assert run_state(folder) == "new"
    folder.mkdir()
    assert run_state(folder) == "incomplete"
    write_json(folder / "result.json", {"status": "finished", "metrics": {"x": float("nan")}})
    assert json.loads((folder / "result.json").read_text())["metrics"] == {"x": None}
    assert run_state(folder) == "finished" and not list(folder.glob("*.tmp"))
    (folder / "result.json").unlink()
    write_json(folder / "error.json", {"status": "failed"})
    assert run_state(folder) == "failed"


@pytest.fixture
def runs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": ["b0", "a0", "b1", "a1", "c0"],
            "group": ["sgd", "sam", "sgd", "sam", "xsam"],
            "state": ["finished"] * 5,
            "final_test_accuracy": [0.6, 0.7, 0.8, 0.9, 0.5],
            "mean_alignment_eps_v1": [math.nan, 0.1, math.nan, 0.3, 0.2],
        }
    )


def test_seed_statistics_keep_the_group_order_and_skip_missing_values(runs):
    statistics = seed_statistics(runs, ["final_test_accuracy", "mean_alignment_eps_v1"])
    assert list(statistics.group) == ["sgd", "sam", "xsam"]
    sgd, sam, xsam = (statistics.iloc[index] for index in range(3))
    assert sgd.final_test_accuracy_mean == pytest.approx(0.7) and sgd.final_test_accuracy_std == pytest.approx(
        0.1414, abs=1e-4
    )
    assert sgd.mean_alignment_eps_v1_n == 0 and sam.mean_alignment_eps_v1_mean == pytest.approx(0.2)
    assert xsam.final_test_accuracy_n == 1 and math.isnan(xsam.final_test_accuracy_std)
    table = format_statistics(statistics, ["final_test_accuracy", "mean_alignment_eps_v1"])
    assert table.iloc[0].tolist() == ["sgd", 2, "0.7 ± 0.14", "–"]
    assert table.iloc[2].tolist() == ["xsam", 1, "0.5", "0.2"]
    markdown = statistics_markdown(statistics, ["mean_alignment_eps_v1"])
    assert markdown.splitlines()[0] == "| group | runs | mean \\|cos∠(ε, v1)\\| |"  # pipes escaped for Markdown
    assert len(markdown.splitlines()) == 5


def test_paired_comparison_subtracts_the_reference_seed_by_seed():
    runs = pd.DataFrame(
        {
            "group": ["sam", "sam", "sam", "xsam", "xsam", "xsam", "sgd"],
            "seed": [0, 1, 2, 0, 1, 2, 0],
            "final_test_accuracy": [0.70, 0.72, 0.68, 0.71, 0.75, 0.68, 0.60],
        }
    )
    comparison = paired_comparison(runs, ["final_test_accuracy"], reference="sam")
    xsam, sgd = comparison.iloc[0], comparison.iloc[1]
    # xsam − sam per seed: +0.01, +0.03, 0.00 → mean 0.01333, sample std 0.01528; t = mean / (std / √3) = 1.512
    assert xsam.group == "xsam" and xsam.pairs == 3 and xsam.higher == 2
    assert xsam.mean_difference == pytest.approx(0.04 / 3) and xsam.std_difference == pytest.approx(0.015275, abs=1e-5)
    assert xsam.p_value == pytest.approx(0.2697, abs=1e-3)  # two-sided Student t with 2 degrees of freedom
    assert sgd.pairs == 1 and sgd.mean_difference == pytest.approx(-0.10) and math.isnan(sgd.p_value)
    table = format_comparison(comparison, "sam")
    assert table.iloc[0].tolist() == ["xsam", "final test accuracy", "0.01333 ± 0.015", "2 / 3", "0.2697"]
    with pytest.raises(ValueError, match="reference"):
        paired_comparison(runs, ["final_test_accuracy"], reference="asam")


def test_seed_curves_average_each_step_over_a_groups_runs():
    frames = [
        history([(0, "lambda_1", 1.0), (10, "lambda_1", 3.0)]).assign(run="a", group="sam"),
        history([(0, "lambda_1", 3.0), (10, "lambda_1", 5.0), (10, "lr", 0.1)]).assign(run="b", group="sam"),
    ]
    curves = seed_curves(pd.concat(frames), ["lambda_1"])
    assert curves[["step", "mean", "n"]].values.tolist() == [[0, 2.0, 2], [10, 4.0, 2]]
    assert curves["std"].tolist() == pytest.approx([math.sqrt(2)] * 2)
    figure = seed_curves_figure(curves, ["lambda_1"])
    band, line = figure.data
    assert band.fill == "toself" and list(line.y) == [2.0, 4.0]


def test_the_summary_figure_and_the_report(runs, tmp_path):
    figure = seed_summary_figure(runs, ["final_test_accuracy"])
    means = [trace for trace in figure.data if trace.error_y.array is not None]
    assert [trace.name for trace in means] == ["sgd", "sam", "xsam"] and means[1].y == (0.8,)
    histories = history([(0, "lambda_1", 1.0)]).assign(run="a0", group="sam")
    failed = pd.concat([runs, pd.DataFrame({"run": ["d0"], "group": ["asam"], "state": ["failed"]})])
    path = write_batch_report(
        failed, histories, tmp_path / "r.html", counted=runs, title="T", metrics=["final_test_accuracy"]
    )
    text = path.read_text()
    assert text.count("<table") == 2 and "0.8 ± 0.14" in text and ">asam<" not in text.split("Every run")[0]
    assert "plotly" in text


def test_notebook_05_defaults_are_trainconfigs_and_it_is_stored_without_outputs():
    declared = papermill.inspect_notebook(NOTEBOOK)
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    defaults.update({field.name: field.default_factory() for field in dataclasses.fields(TrainConfig)
                     if field.default_factory is not dataclasses.MISSING})  # fmt: skip
    assert set(declared) == set(defaults) | {"run_dir", "quick"}
    for name, default in defaults.items():
        assert ast.literal_eval(declared[name]["default"]) == default, name
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


def test_config_from_parameters_reads_the_notebooks_namespace():
    namespace = {"optimizer": "sam", "rho": 0.1, "seed": 3, "run_dir": "x", "quick": True, "In": []}
    config = config_from_parameters(namespace)
    assert (config.optimizer, config.rho, config.seed) == ("sam", 0.1, 3)
    assert config_from_parameters(namespace, quick=True) == config.replace(**QUICK_DEMO_CHANGES)
    with pytest.raises(ValueError, match="rho must be"):
        config_from_parameters({"optimizer": "sam", "rho": -1.0})
