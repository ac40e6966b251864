"""Grid files: expansion into runs, stable folder names, and clear errors for bad grids before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.batch_notebooks import write_fake_notebook, write_grid
from workbench.batch import load_grid, parse_grid, run_batch
from workbench.cli import main

REPO = Path(__file__).resolve().parents[1]


NOTEBOOK = REPO / "notebooks" / "05_reproduce_papers.ipynb"  # declares every TrainConfig option


@pytest.fixture
def notebook() -> Path:
    return NOTEBOOK


def test_variants_cross_the_grid_with_the_first_axis_slowest(notebook):
    grid = parse_grid(
        {
            "notebook": notebook.name,
            "base": {"steps": 5},
            "variants": {"sgd": {"optimizer": "sgd"}, "sam": {"optimizer": "sam", "rho": 0.1}},
            "grid": {"seed": [0, 1], "lr": [0.1, 0.2]},
        },
        root=notebook.parent,
    )
    assert grid.notebook == notebook
    assert [(run.axes["seed"], run.axes["lr"], run.variant) for run in grid.runs] == [
        (seed, lr, variant) for seed in (0, 1) for lr in (0.1, 0.2) for variant in ("sgd", "sam")
    ]
    sam = grid.runs[1]
    assert sam.options == {"steps": 5, "optimizer": "sam", "rho": 0.1, "seed": 0, "lr": 0.1}
    assert sam.group == "sam lr=0.1"  # the seed is what repeats a setting, so it is not part of the group


def test_folder_names_are_readable_safe_stable_and_distinct(notebook):
    values = {"notebook": notebook.name, "grid": {"dataset_options": [{"num_samples": 300}, {"num_samples": 400}]}}
    names = [run.name for run in parse_grid(values, root=notebook.parent).runs]
    assert names == [run.name for run in parse_grid(values, root=notebook.parent).runs]
    assert len(set(names)) == 2
    for name in names:
        assert name.startswith("dataset_options=-num_samples-") and "/" not in name and " " not in name
        assert len(name.rsplit("-", 1)[1]) == 8


def test_the_shipped_grids_are_valid():
    quick = load_grid(REPO / "grids" / "quick.yaml")
    assert len(quick.runs) == 4 and {run.group for run in quick.runs} == {"sgd", "eigensam"}
    study = load_grid(REPO / "grids" / "mnist1d_study.yaml")
    assert {run.variant for run in study.runs} >= {"sgd", "sam", "asam", "eigensam", "xsam"}
    assert len({run.axes["seed"] for run in study.runs}) >= 5
    assert quick.notebook == study.notebook == NOTEBOOK


def test_the_gpu_grid_is_rejected_up_front_without_cuda():
    path = REPO / "grids" / "cifar10_resnet18.yaml"
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        cuda = False
    if cuda:
        assert load_grid(path).runs
    else:
        with pytest.raises(ValueError, match=r"asks for CUDA .* has none; .*cifar10_resnet18.yaml --preview"):
            load_grid(path)


def test_the_gpu_grid_has_a_shortened_cpu_preview():
    grid = load_grid(REPO / "grids" / "cifar10_resnet18.yaml", preview=True)
    assert [run.variant for run in grid.runs] == ["sgd", "sam", "asam", "eigensam", "xsam"]
    for run in grid.runs:
        assert run.options["device"] == "cpu" and run.axes == {"seed": 0} and run.options["epochs"] == 1
        assert run.options["dataset_options"] == {"augment": True, "subset": 2000}
    assert grid.runs[3].options["freq"] == 100  # the variants' own options stay
    with pytest.raises(ValueError, match="--preview needs a 'preview' section"):
        load_grid(REPO / "grids" / "quick.yaml", preview=True)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"grid": {"seed": [0]}, "outputs": "x"}, "unknown key(s) 'outputs'; allowed: notebook, description"),
        ({"grid": {"seed": [0], "learning_rate": [0.1]}}, "grid: unknown option(s) 'learning_rate'; allowed"),
        ({"base": {"epoch": 3}, "grid": {"seed": [0]}}, "base: unknown option(s) 'epoch'"),
        ({"variants": {"sam": {"optimiser": "sam"}}}, "variant 'sam': unknown option(s) 'optimiser'"),
        ({"base": {"lr": "fast"}, "grid": {"seed": [0]}}, "lr must be a finite number"),
        ({"grid": {"seed": [0], "epochs": [1.5]}}, "epochs must be an integer"),
        ({"grid": {"seed": 3}}, "grid: seed must be a list of values, got 3"),
        ({"base": [1, 2], "grid": {"seed": [0]}}, "base must be a mapping"),
        ({"grid": {"seed": [0], "lr_milestones": [0.5]}}, "lr_milestones=0.5: lr_milestones must be a list"),
        ({"grid": {}}, "the grid is empty"),
        ({}, "the grid is empty"),
        ({"grid": {"seed": []}}, "grid: seed has no values"),
        ({"variants": {"sgd": {"optimizer": "sgd", "alpha": 0.2}}}, "optimizer 'sgd' takes no alpha"),
        ({"base": {"dataset_options": {"size": 3}}, "grid": {"seed": [0]}}, "unknown option(s) 'size'"),
        ({"base": {"model": "vit"}, "grid": {"seed": [0]}}, "model must be one of 'mlp'"),
        ({"grid": {"seed": [0, 0]}}, "have the same options"),
        ({"variants": {"a": {"seed": 1}}, "grid": {"seed": [0]}}, "variant 'a' and the grid both set seed"),
    ],
)
def test_bad_grids_fail_with_a_clear_message(notebook, sections, message):
    with pytest.raises(ValueError) as error:
        parse_grid({"notebook": notebook.name, **sections}, root=notebook.parent, source="g.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("g.yaml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"grid": {"seed": [0]}}, "'notebook' is required"),
        ({"notebook": "missing.ipynb", "grid": {"seed": [0]}}, "notebook 'missing.ipynb' does not exist"),
        ({"notebook": "grid.yaml", "grid": {"seed": [0]}}, "must be an .ipynb file"),
        ([{"seed": 0}], "holds a mapping"),
    ],
)
def test_a_missing_notebook_or_a_malformed_file_fails_with_a_clear_message(tmp_path, values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_grid(values, root=tmp_path)


def test_every_option_a_grid_sets_must_be_a_parameter_of_the_notebook(tmp_path):
    notebook = write_fake_notebook(tmp_path / "fake.ipynb")  # declares run_dir, seed and steps only
    with pytest.raises(ValueError, match=r"fake.ipynb does not declare parameter\(s\) lr in its 'parameters' cell"):
        parse_grid({"notebook": notebook.name, "grid": {"seed": [0], "lr": [0.1]}}, root=tmp_path)


def test_a_notebook_without_a_parameters_cell_is_rejected(tmp_path):
    notebook = write_fake_notebook(tmp_path / "fake.ipynb")
    text = notebook.read_text().replace('"parameters"', '"other"')
    notebook.write_text(text)
    with pytest.raises(ValueError, match="has no cell tagged 'parameters'"):
        parse_grid({"notebook": notebook.name, "grid": {"seed": [0]}}, root=tmp_path)


def test_a_bad_grid_file_exits_with_status_2_before_anything_runs(tmp_path, capsys):
    grid = write_grid(tmp_path, grid={"seed": [0, 1], "momentun": [0.9]})
    output = tmp_path / "out"
    assert main(["batch", "run", str(grid), "--output", str(output), "--no-progress"]) == 2
    assert "unknown option(s) 'momentun'" in capsys.readouterr().err
    assert not output.exists()
    assert main(["batch", "run", str(tmp_path / "nope.yaml"), "--output", str(output)]) == 2
    assert "grid file" in capsys.readouterr().err and not output.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"workers": 0}, "workers must be an integer >= 1"), ({"kernel_name": "julia-9"}, "kernel_name must be")],
)
def test_bad_batch_options_fail_before_anything_runs(tmp_path, options, message):
    grid = write_grid(tmp_path, grid={"seed": [0]})
    with pytest.raises(ValueError, match=message):
        run_batch(grid, tmp_path / "out", progress=False, **options)
    assert not (tmp_path / "out").exists()
