"""Grid files: a small YAML schema expanded into validated runs, each a set of TrainConfig options.

Schema (every key but ``notebook`` is optional; at least one run must result)::

    notebook: ../notebooks/05_reproduce_papers.ipynb   # relative to the grid file (or absolute)
    description: free text shown in the collected report
    base:                 # TrainConfig options shared by every run
      dataset: mnist1d
      model: mlp
    variants:             # named option sets, e.g. one optimizer with its paper's ρ and α each
      sgd: {optimizer: sgd}
      eigensam: {optimizer: eigensam, rho: 0.05, alpha: 0.2, freq: 10}
    grid:                 # axes: option → list of values, crossed with each other and with the variants
      seed: [0, 1, 2, 3, 4]
    preview:              # optional: a shortened version (`batch run --preview`), e.g. for a machine without a GPU
      device: cpu         # options overriding base (and the variants); a list for a grid axis replaces its values
      epochs: 1
      seed: [0]
    resources:            # optional: what each run needs of a Dask worker's resources (`dask worker --resources`)
      GPU: 1

A run's options are ``base``, then its variant's options, then its grid values (an option may not be set by both
a variant and a grid axis). Runs are ordered with the first grid axis varying slowest and the variants fastest,
so with ``grid: {seed: [...]}`` every variant's seed 0 runs first. Every run is checked before anything runs:
option names against ``TrainConfig``'s fields, values by ``TrainConfig`` itself, dataset and model names and
their options against the registries, and sharpness options against the optimizer; the notebook must exist and
declare ``run_dir`` and every option the grid sets in its ``parameters`` cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workbench._checks import check_choice
from workbench._options import check_options
from workbench.datasets import DATASETS, dataset_options
from workbench.devices import resolve_device
from workbench.models import MODELS, model_options
from workbench.train import TrainConfig

GRID_KEYS = ("notebook", "description", "base", "variants", "grid", "preview", "resources")
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(TrainConfig))
RUN_DIR_PARAMETER = "run_dir"  # the notebook parameter that receives the run's folder
SEED_AXIS = "seed"  # runs that differ only in this option are repeats of one setting
_NAME_LENGTH = 64  # readable part of a run folder's name, before its hash
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch.

    Attributes:
        name: its folder name: the variant and grid values, filesystem-safe, then 8 hex digits of a hash of
            ``options`` (stable across invocations, so a re-run finds its finished runs).
        variant: its variant's label, or None in a grid without variants.
        axes: its grid values, e.g. ``{"seed": 3}``.
        options: every TrainConfig option the grid sets for it (base ← variant ← axes); the notebook receives
            them as parameters, and TrainConfig's defaults fill the rest.
    """

    name: str
    variant: str | None
    axes: dict[str, Any]
    options: dict[str, Any]

    @property
    def group(self) -> str:
        """The setting this run repeats: its variant and grid values other than the seed ("all" if none)."""
        parts = [self.variant] if self.variant is not None else []
        parts += [f"{key}={_text(value)}" for key, value in self.axes.items() if key != SEED_AXIS]
        return " ".join(parts) or "all"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (what params.json holds, with the group)."""
        return {**dataclasses.asdict(self), "group": self.group}


@dataclass(frozen=True)
class Grid:
    """A parsed and validated grid: the notebook to run and the runs, in execution order (``path``: its file;
    ``resources``: what each run needs of a Dask worker, e.g. ``{"GPU": 1}``; Dask schedules by it)."""

    notebook: Path
    description: str
    runs: tuple[RunSpec, ...]
    path: Path | None = None
    resources: dict[str, float] = dataclasses.field(default_factory=dict)


def load_grid(path: str | Path, *, preview: bool = False) -> Grid:
    """Read and validate a grid file (YAML); see the module docstring for the schema. ``preview`` applies the
    file's ``preview`` section (its shortened version).

    Raises:
        ValueError: naming the file, the offending key or run, and what is allowed; before anything runs.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"grid file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"grid file {path} is not valid YAML: {error}") from None
    return dataclasses.replace(parse_grid(values, root=path.parent, source=str(path), preview=preview), path=path)


def parse_grid(values: Any, *, root: str | Path, source: str = "grid", preview: bool = False) -> Grid:
    """Validate a grid given as plain values (what a YAML grid file holds).

    Args:
        values: mapping with the keys of ``GRID_KEYS``.
        root: directory a relative ``notebook`` path is resolved against.
        source: name used in error messages (the file's path).
        preview: apply the ``preview`` section: its options override ``base`` and the variants' (a list for a grid
            axis replaces that axis).

    Raises:
        ValueError: for an unknown key, a wrong type, an empty grid, an invalid run, a missing notebook, CUDA
            asked for on a machine without it (naming ``--preview`` when the grid has one), or ``preview``
            without a preview section.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{source}: a grid file holds a mapping with keys {', '.join(GRID_KEYS)}; got {values!r}")
    unknown = sorted(set(values) - set(GRID_KEYS), key=str)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(GRID_KEYS)}")
    if "notebook" not in values:
        raise ValueError(f"{source}: 'notebook' is required (the path of the notebook each run executes)")
    notebook = _notebook_path(values["notebook"], Path(root), source)
    description = values.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{source}: description must be text, got {description!r}")
    base = _options(values.get("base"), f"{source}: base")
    variants = _variants(values.get("variants"), source)
    axes = _axes(values.get("grid"), source)
    if not variants and not axes:
        raise ValueError(f"{source}: the grid is empty; give 'grid' (option → list of values) and/or 'variants'")
    for label, options in variants.items():
        clash = sorted(set(options) & set(axes))
        if clash:
            raise ValueError(f"{source}: variant {label!r} and the grid both set {', '.join(clash)}; set it in one")
    shortened = _options(values.get("preview"), f"{source}: preview")
    if preview:
        if "preview" not in values:
            raise ValueError(f"{source}: --preview needs a 'preview' section (options of the shortened version)")
        axes |= {key: value for key, value in shortened.items() if key in axes}
        base |= {key: value for key, value in shortened.items() if key not in axes}
        variants = {label: {k: v for k, v in options.items() if k not in base} for label, options in variants.items()}
    elif "preview" in values:
        _check_cuda(base, variants, source)
    runs = _expand(base, variants, axes, source)
    _check_notebook_parameters(notebook, {key for run in runs for key in run.options}, source)
    return Grid(notebook, description, runs, resources=_resources(values.get("resources"), source))


def _resources(values: Any, source: str) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{source}: resources must be a mapping of resource names to amounts, e.g. {{GPU: 1}}")
    for name, amount in values.items():
        valid = isinstance(amount, int | float) and not isinstance(amount, bool) and amount > 0
        if not isinstance(name, str) or not name or not valid:
            raise ValueError(f"{source}: resources: {name!r} must be a name with an amount > 0, got {amount!r}")
    return {name: float(amount) for name, amount in values.items()}


def _check_cuda(base: dict[str, Any], variants: dict[str, dict[str, Any]], source: str) -> None:
    """A grid that asks for CUDA on a machine without it, and has a preview: say how to run that instead."""
    import torch

    devices = {str(options.get("device", base.get("device", "auto"))) for options in [base, *variants.values()]}
    if any(device.startswith("cuda") for device in devices) and not torch.cuda.is_available():
        raise ValueError(
            f"{source} asks for CUDA (device: cuda) and this machine has none; run its shortened CPU version with "
            f"`workbench batch run {source} --preview` (the grid's 'preview' settings)"
        )


def _notebook_path(value: Any, root: Path, source: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{source}: notebook must be a path to an .ipynb file, got {value!r}")
    path = (root / value).resolve()
    if path.suffix != ".ipynb":
        raise ValueError(f"{source}: notebook must be an .ipynb file, got {value!r}")
    if not path.is_file():
        raise ValueError(f"{source}: notebook {value!r} does not exist (looked for {path})")
    return path


def _options(values: Any, where: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping of TrainConfig options to values, got {values!r}")
    _check_names(values, where)
    return dict(values)


def _check_names(names: Any, where: str) -> None:
    unknown = sorted(set(names) - set(CONFIG_FIELDS), key=str)
    if unknown:
        raise ValueError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; allowed (TrainConfig fields): "
            + ", ".join(CONFIG_FIELDS)
        )


def _variants(values: Any, source: str) -> dict[str, dict[str, Any]]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{source}: variants must be a mapping of labels to option mappings, got {values!r}")
    variants = {}
    for label, options in values.items():
        if not isinstance(label, str) or not label:
            raise ValueError(f"{source}: variant labels must be non-empty text, got {label!r}")
        variants[label] = _options(options, f"{source}: variant {label!r}")
    return variants


def _axes(values: Any, source: str) -> dict[str, list[Any]]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{source}: grid must be a mapping of options to lists of values, got {values!r}")
    _check_names(values, f"{source}: grid")
    for key, options in values.items():
        if not isinstance(options, list):
            raise ValueError(f"{source}: grid: {key} must be a list of values, got {options!r}")
        if not options:
            raise ValueError(f"{source}: grid: {key} has no values (an empty axis gives an empty grid)")
    return dict(values)


def _expand(
    base: dict[str, Any], variants: dict[str, dict[str, Any]], axes: dict[str, list[Any]], source: str
) -> tuple[RunSpec, ...]:
    labelled = list(variants.items()) or [(None, {})]
    runs, seen = [], {}
    for point in itertools.product(*axes.values()):
        values = dict(zip(axes, point, strict=True))
        for label, variant_options in labelled:
            options = {**base, **variant_options, **values}
            description = ", ".join(
                ([f"variant {label!r}"] if label else []) + [f"{k}={v!r}" for k, v in values.items()]
            )
            _check_run(options, f"{source}: run {description or 'of base options'}")
            key = _canonical(options)
            if key in seen:
                raise ValueError(f"{source}: runs {seen[key]} and {description} have the same options")
            seen[key] = description
            runs.append(RunSpec(_folder_name(label, values, key), label, values, options))
    return tuple(runs)


def _check_run(options: dict[str, Any], where: str) -> None:
    """Everything that can be checked without loading data or building a model."""
    try:
        config = TrainConfig.from_dict(options)
        check_choice("dataset", config.dataset, DATASETS)
        check_choice("model", config.model, MODELS)
        check_options(f"dataset {config.dataset!r}", config.dataset_options, dataset_options(config.dataset))
        check_options(f"model {config.model!r}", config.model_options, model_options(config.model))
        resolve_device(config.device)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    except TypeError as error:  # e.g. a number where TrainConfig expects a list (lr_milestones)
        raise ValueError(f"{where}: a value has the wrong type ({error})") from None


def _check_notebook_parameters(notebook: Path, options: set[str], source: str) -> None:
    import papermill

    try:
        declared = set(papermill.inspect_notebook(notebook))
    except Exception as error:  # nbformat and papermill raise several types for unreadable notebooks
        raise ValueError(f"{source}: notebook {notebook} cannot be read: {error}") from None
    if not declared:
        raise ValueError(f"{source}: notebook {notebook} has no cell tagged 'parameters'")
    missing = sorted(({RUN_DIR_PARAMETER} | options) - declared)
    if missing:
        raise ValueError(
            f"{source}: notebook {notebook.name} does not declare parameter(s) {', '.join(missing)} in its "
            f"'parameters' cell (it declares: {', '.join(sorted(declared))})"
        )


def _canonical(options: Mapping[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, default=list)


def _folder_name(variant: str | None, axes: dict[str, Any], canonical: str) -> str:
    readable = "_".join(([variant] if variant else []) + [f"{key}={_text(value)}" for key, value in axes.items()])
    readable = _UNSAFE.sub("-", readable).strip("-.")[:_NAME_LENGTH] or "run"
    return f"{readable}-{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
