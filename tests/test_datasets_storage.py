"""The data root's resolution order, what is on disk (``dataset_status``), ``prepare_dataset``, and the
``workbench data list|prepare`` commands, on temporary roots (no network: CIFAR downloads are faked or refused)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from tests.batch_notebooks import write_grid
from tests.test_datasets_cifar import _install_fake_torchvision, write_fake_cifar10
from workbench.batch import load_grid
from workbench.cli import main
from workbench.datasets import DATASETS, DataRoot, dataset_status, load_dataset, prepare_dataset, resolve_data_root
from workbench.datasets import mnist1d as mnist1d_module
from workbench.datasets import root as root_module
from workbench.datasets.cifar import CIFAR10
from workbench.datasets.storage import DIGITS_FILE, check_writable, disk_bytes, format_size

REPO = Path(__file__).resolve().parents[1]
VARIABLE = root_module.DATA_ROOT_VARIABLE


@pytest.fixture(autouse=True)
def no_root_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without ``$WORKBENCH_DATA`` (CI or a user may have it set)."""
    monkeypatch.delenv(VARIABLE, raising=False)


@pytest.fixture
def fast_mnist1d(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Replace MNIST-1D's generator (seconds; tested in test_datasets_mnist1d.py) by random sequences of the same
    shapes; returns the list of (num_samples, generation_seed) it was called with."""
    calls: list[tuple[int, int]] = []

    def generate(num_samples: int, generation_seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        calls.append((num_samples, generation_seed))
        inputs = np.random.default_rng(generation_seed).standard_normal((num_samples, 40)).astype(np.float32)
        return inputs, np.arange(num_samples, dtype=np.int64) % 10, {"num_samples": num_samples}

    monkeypatch.setattr(mnist1d_module, "generate_samples", generate)
    return calls


def _default_mnist1d_file(root: Path) -> Path:
    return mnist1d_module.cache_path(root, 5000, 42)


# --- the data root -------------------------------------------------------------------------------------------------


def test_resolution_order_argument_then_variable_then_checkout(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, str(tmp_path / "from_variable"))
    assert resolve_data_root(tmp_path / "given") == DataRoot(tmp_path / "given", root_module.EXPLICIT)
    assert resolve_data_root(None) == DataRoot(tmp_path / "from_variable", root_module.ENVIRONMENT)
    monkeypatch.setenv(VARIABLE, "")  # empty counts as unset, not as the current directory
    assert resolve_data_root() == DataRoot(REPO / "data", root_module.CHECKOUT)  # this checkout's data/
    monkeypatch.delenv(VARIABLE)
    assert resolve_data_root() == DataRoot(REPO / "data", root_module.CHECKOUT)
    assert (REPO / "data" / "README.md").is_file() and root_module.checkout_data_dir() == REPO / "data"


def test_an_installed_package_uses_the_user_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    site_packages = tmp_path / "site-packages"
    (site_packages / "workbench").mkdir(parents=True)
    monkeypatch.setattr(root_module, "PACKAGE_DIR", site_packages / "workbench")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert root_module.checkout_data_dir() is None
    assert resolve_data_root() == DataRoot(tmp_path / "home" / ".cache" / "workbench", root_module.USER)
    (site_packages / "pyproject.toml").write_text("")  # a pyproject.toml alone does not make a checkout
    assert resolve_data_root().origin == root_module.USER
    monkeypatch.setenv(VARIABLE, "~/shared")
    assert resolve_data_root() == DataRoot(tmp_path / "home" / "shared", root_module.ENVIRONMENT)


def test_relative_roots_become_absolute_and_bad_roots_are_named(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root("here").path == tmp_path / "here"
    monkeypatch.setenv(VARIABLE, "there")
    assert resolve_data_root().path == tmp_path / "there"
    for bad in (3, "", b"bytes"):
        with pytest.raises(ValueError, match="root must be a directory path"):
            resolve_data_root(bad)
    with pytest.raises(ValueError, match="root must be a directory path"):
        load_dataset("moons", root=3)


def test_loaders_read_and_cache_under_the_variable(tmp_path, monkeypatch: pytest.MonkeyPatch, fast_mnist1d) -> None:
    monkeypatch.setenv(VARIABLE, str(tmp_path))
    write_fake_cifar10(tmp_path)
    assert str(tmp_path / CIFAR10.folder) in load_dataset("cifar10").description
    load_dataset("mnist1d", num_samples=100)
    assert fast_mnist1d == [(100, 42)] and mnist1d_module.cache_path(tmp_path, 100, 42).is_file()


# --- dataset_status and prepare_dataset ----------------------------------------------------------------------------


def test_status_of_every_dataset_on_an_empty_root(tmp_path) -> None:
    statuses = {name: dataset_status(name, tmp_path / "root") for name in DATASETS}
    assert not (tmp_path / "root").exists()  # reading status creates nothing
    for name in ("moons", "spirals", "blobs"):
        assert statuses[name].state == "in memory" and statuses[name].present and statuses[name].path is None
    digits = statuses["digits"]
    assert digits.state == "present" and digits.path.name == DIGITS_FILE[1]
    assert digits.size_bytes == digits.path.stat().st_size > 0
    assert statuses["mnist1d"].state == "missing" and statuses["mnist1d"].path == tmp_path / "root" / "mnist1d"
    assert "not cached yet" in statuses["mnist1d"].detail
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")):
        status = statuses[name]
        assert (status.state, status.path, status.size_bytes) == ("missing", tmp_path / "root" / folder, 0)
        assert status.origin == "downloaded on request" and status.detail == "not downloaded"


def test_cifar_status_counts_its_files_and_names_the_missing_ones(tmp_path) -> None:
    write_fake_cifar10(tmp_path)
    folder = tmp_path / CIFAR10.folder
    status = dataset_status("cifar10", tmp_path)
    assert status.present and status.path == folder
    assert status.size_bytes == sum(path.stat().st_size for path in folder.iterdir()) == disk_bytes(folder)
    assert dataset_status("cifar10", folder).present  # the release folder itself may be the root, as for loading
    (folder / "data_batch_3").unlink()
    status = dataset_status("cifar10", tmp_path)
    assert status.state == "missing" and status.detail == "lacks data_batch_3"


def test_prepare_generates_mnist1d_once_into_the_root(tmp_path, fast_mnist1d) -> None:
    status = prepare_dataset("mnist1d", tmp_path / "new" / "root")
    cache = _default_mnist1d_file(tmp_path / "new" / "root")
    assert status.present and status.path == cache.parent and status.size_bytes == cache.stat().st_size
    assert stat.S_IMODE(cache.stat().st_mode) == 0o644  # others sharing the root can read it
    written = cache.stat().st_mtime_ns
    assert prepare_dataset("mnist1d", tmp_path / "new" / "root").present
    assert fast_mnist1d == [(5000, 42)] and cache.stat().st_mtime_ns == written  # present: left as it is


def test_prepare_downloads_cifar_through_torchvision(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def download(url: str, download_root: str, md5: str) -> None:
        calls.append(url)
        write_fake_cifar10(Path(download_root))

    _install_fake_torchvision(monkeypatch, download)
    assert prepare_dataset("cifar10", tmp_path).present and calls == [CIFAR10.url]


def test_offline_cifar_says_which_file_to_copy_where(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(url: str, download_root: str, md5: str) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    _install_fake_torchvision(monkeypatch, no_network)
    with pytest.raises(OSError, match="could not download CIFAR-10") as error:
        prepare_dataset("cifar10", tmp_path)
    _assert_names_the_manual_steps(str(error.value), tmp_path)
    _uninstall_torchvision(monkeypatch)
    with pytest.raises(ImportError, match=r"needs torchvision.*pip install torchvision") as error:
        prepare_dataset("cifar10", tmp_path)
    _assert_names_the_manual_steps(str(error.value), tmp_path)


def _uninstall_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``from torchvision.datasets.utils import ...`` fail as it does without torchvision."""
    for name in ("torchvision", "torchvision.datasets", "torchvision.datasets.utils"):
        monkeypatch.setitem(sys.modules, name, None)


def _assert_names_the_manual_steps(message: str, root: Path) -> None:
    assert CIFAR10.url in message and CIFAR10.md5 in message
    assert f"copy cifar-10-python.tar.gz to {root}" in message
    assert f"tar -xzf {root / 'cifar-10-python.tar.gz'} -C {root}" in message
    assert f"{root / CIFAR10.folder}/ with data_batch_1, data_batch_2" in message


def test_unwritable_or_unusable_roots_are_named(tmp_path, fast_mnist1d) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=re.escape(f"data root {blocker / 'sub'} cannot be created or written")):
        prepare_dataset("mnist1d", blocker / "sub")
    with pytest.raises(ValueError, match=re.escape(f"data root {blocker} is not a directory")):
        dataset_status("cifar10", blocker)
    with pytest.raises(ValueError, match=r"name must be one of 'moons'.*'pysource'; got 'mnist'"):
        prepare_dataset("mnist", tmp_path)
    assert not fast_mnist1d  # nothing was generated for nothing
    check_writable(tmp_path / "fine" / "root")
    assert list((tmp_path / "fine" / "root").iterdir()) == []  # created, and its probe file removed


def test_sizes_read_in_decimal_units() -> None:
    assert [format_size(n) for n in (0, 999, 57_523, 841_772, 184_320_000, 2 * 10**9)] == [
        "0 B", "999 B", "57.5 kB", "841.8 kB", "184.3 MB", "2.0 GB"
    ]  # fmt: skip


# --- the commands --------------------------------------------------------------------------------------------------


def test_data_list_shows_the_root_and_each_dataset(tmp_path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_cifar10(tmp_path)
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"data root: {tmp_path} (from --data-dir / root=)"
    rows = {line.split()[0]: line for line in lines[2 : 2 + len(DATASETS)]}
    assert list(rows) == list(DATASETS)
    assert "in memory" in rows["moons"] and "present" in rows["digits"] and "missing" in rows["mnist1d"]
    size = format_size(disk_bytes(tmp_path / CIFAR10.folder))
    assert rows["cifar10"].split()[-3:] == [*size.split(), str(tmp_path / CIFAR10.folder)]
    assert "present" in rows["cifar10"] and "missing" in rows["cifar100"]
    assert "cifar100: not downloaded; `workbench data prepare cifar100`" in lines[-1]

    monkeypatch.setenv(VARIABLE, str(tmp_path / "elsewhere"))
    assert main(["data", "list", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"data root: {tmp_path / 'elsewhere'} (from $WORKBENCH_DATA; not created yet)\n")
    assert "moons" not in out and "cifar10" in out


def test_data_prepare_generates_and_reports(tmp_path, capsys, fast_mnist1d) -> None:
    assert main(["data", "prepare", "mnist1d", "--data-dir", str(tmp_path)]) == 0
    cache = _default_mnist1d_file(tmp_path)
    assert capsys.readouterr().out == f"mnist1d: present, {format_size(cache.stat().st_size)} at {cache.parent}\n"
    assert main(["data", "prepare", "moons", "--data-dir", str(tmp_path)]) == 0
    assert "nothing to prepare" in capsys.readouterr().out


def test_data_prepare_offline_exits_1_with_the_manual_steps(tmp_path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    _uninstall_torchvision(monkeypatch)
    assert main(["data", "prepare", "cifar10", "--data-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("workbench data: error: downloading CIFAR-10 needs torchvision")
    _assert_names_the_manual_steps(error, tmp_path)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["prepare", "imagenet"], "name must be one of 'moons'"),
        (["list", "mnist1d", "imagenet"], "name must be one of 'moons'"),
        (["prepare", "mnist1d", "--data-dir", "{blocker}/sub"], "data root {blocker}/sub cannot be created or written"),
        (["list", "--data-dir", "{blocker}"], "data root {blocker} is not a directory"),
    ],
)
def test_data_commands_exit_2_naming_a_bad_name_or_root(tmp_path, capsys, fast_mnist1d, arguments, message) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["data", *(argument.format(blocker=blocker) for argument in arguments)]) == 2
    assert message.format(blocker=blocker) in capsys.readouterr().err


def test_train_reads_and_caches_its_data_under_data_dir(tmp_path, fast_mnist1d) -> None:
    flags = ["--dataset", "mnist1d", "--dataset-option", "num_samples=100", "--model", "mlp", "--steps", "2"]
    run_dir = tmp_path / "run"
    status = main(["train", *flags, "--probe-every", "none", "--run-dir", str(run_dir), "--data-dir",
                   str(tmp_path / "data"), "--no-progress"])  # fmt: skip
    assert status == 0 and mnist1d_module.cache_path(tmp_path / "data", 100, 42).is_file()
    assert "data" not in json.loads((run_dir / "config.json").read_text())  # machine-specific: not in the config


def test_a_batch_hands_its_data_root_to_its_runs(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = write_grid(tmp_path, grid={"seed": [0]})
    monkeypatch.chdir(tmp_path)  # a relative --data-dir reaches the kernels (which start in their run folders) absolute
    assert main(["batch", "run", str(grid), "--output", "out", "--data-dir", "shared", "--no-progress"]) == 0
    (run,) = load_grid(grid).runs
    summary = json.loads((tmp_path / "out" / run.name / "summary.json").read_text())
    assert summary["data_root"] == str(tmp_path / "shared")


def test_generated_contents_of_data_are_ignored_by_git_and_the_readme_is_not() -> None:
    readme = (REPO / "data" / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in DATASETS)  # every registered dataset is described
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["data/README.md", "data/.gitignore", "data/mnist1d/x.npz", "data/cifar-10-batches-py/test_batch"]
    checked = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert checked.stdout.split() == paths[2:]
