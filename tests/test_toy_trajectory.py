"""Toy trajectories against the workbench.optim optimizers stepped by hand on the same function."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from workbench.optim import SAM, XSAM, EigenSAM
from workbench.optim.rules import eigen_sam_perturbation, sam_perturbation, xsam_direction
from workbench.toy import TrajectoryCache
from workbench.toy.landscapes import AnisotropicQuadratic, CurvedValley, GaussianWells, SharpFlatBasins
from workbench.toy.trajectory import METHOD_SETTINGS, METHODS, RunSettings, Trajectory, run_all, run_trajectory

LANDSCAPE = SharpFlatBasins()
START = (-0.6, 0.8)
STEPS = 25
XSAM_SWITCHES = [
    {},
    {"xsam_alpha": 2.0, "xsam_orientation": "as_computed", "xsam_normalize": True},
    {"xsam_alpha": 0.5, "xsam_orientation": "along_adversarial", "xsam_angle_gate": True},
]


def hand_optimizer(method: str, param: torch.nn.Parameter, settings: RunSettings, freq: int):
    """The optimizer class for ``method``, built here from the settings without the toy runner."""
    if method == "GD":
        return torch.optim.SGD([param], lr=settings.lr)
    if method == "SAM":
        return SAM([param], rho=settings.rho, lr=settings.lr)
    tracking = {"freq": freq, "power_iters": settings.power_iters, "refresh": "power", "seed": settings.seed}
    if method == "Eigen-SAM":
        return EigenSAM([param], rho=settings.rho, alpha=settings.eigen_alpha, lr=settings.lr, **tracking)
    return XSAM(
        [param],
        rho=settings.rho,
        alpha=settings.xsam_alpha,
        lr=settings.lr,
        normalize_direction=settings.xsam_normalize,
        angle_gate=settings.xsam_angle_gate,
        orientation=settings.xsam_orientation,
        **tracking,
    )


def hand_positions(landscape, method: str, settings: RunSettings) -> np.ndarray:
    """θ_0 … θ_T from stepping the optimizer class directly; with exact v1, from the landscape's analytic gradient
    and Hessian (checked against autograd in test_toy_landscapes.py: autograd differs in the last bits, and near the
    ridge between the basins such differences grow to 1e-10 within 25 steps), else through autograd."""
    param = torch.nn.Parameter(torch.tensor(START, dtype=torch.float64))
    exact = settings.eigenvector == "exact"
    optimizer = hand_optimizer(method, param, settings, freq=settings.steps + 1 if exact else settings.freq)

    def closure():
        optimizer.zero_grad()
        if exact:
            param.grad = landscape.gradient(param.detach())
            return landscape.value(param.detach())
        loss = landscape.value(param)
        loss.backward()
        return loss

    positions, previous = [param.detach().clone()], None
    for _ in range(settings.steps):
        if exact and method in ("Eigen-SAM", "X-SAM"):
            eigenvalues, eigenvectors = torch.linalg.eigh(landscape.hessian(param.detach()))
            v1 = eigenvectors[:, -1]
            reference = previous if previous is not None else torch.eye(2, dtype=torch.float64)[v1.abs().argmax()]
            previous = v1 if float(v1 @ reference) >= 0 else -v1
            optimizer.tracker.set_vector(previous, float(eigenvalues[-1]))
        optimizer.step(closure)
        positions.append(param.detach().clone())
    return torch.stack(positions).numpy()


@pytest.mark.parametrize("method", METHODS)
def test_power_iteration_trajectories_are_the_optimizers_own(method):
    settings = RunSettings(rho=0.15, lr=0.02, steps=STEPS, eigenvector="power", freq=4, power_iters=3, seed=3)
    trajectory = run_trajectory(LANDSCAPE, START, method, settings)
    assert np.array_equal(trajectory.positions, hand_positions(LANDSCAPE, method, settings))


@pytest.mark.parametrize(
    ("method", "switches"),
    [("GD", {}), ("SAM", {}), ("Eigen-SAM", {"eigen_alpha": 0.7})] + [("X-SAM", s) for s in XSAM_SWITCHES],
)
def test_exact_v1_trajectories_are_the_optimizers_own(method, switches):
    settings = replace(RunSettings(rho=0.15, lr=0.02, steps=STEPS), **switches)
    trajectory = run_trajectory(LANDSCAPE, START, method, settings)
    assert np.array_equal(trajectory.positions, hand_positions(LANDSCAPE, method, settings))


def test_power_schedule_uses_no_vector_before_the_first_refresh():
    settings = RunSettings(steps=12, eigenvector="power", freq=5)
    trajectories = run_all(LANDSCAPE, START, settings, methods=("SAM", "Eigen-SAM"))
    used = trajectories["Eigen-SAM"].used_eigenvectors
    assert np.isnan(used[:5]).all() and np.isfinite(used[5:]).all()
    # before the first refresh Eigen-SAM is SAM
    assert np.array_equal(trajectories["Eigen-SAM"].positions[:6], trajectories["SAM"].positions[:6])
    assert not np.allclose(trajectories["Eigen-SAM"].positions[7:], trajectories["SAM"].positions[7:])


@pytest.mark.parametrize("switches", XSAM_SWITCHES)
def test_recorded_vectors_obey_the_rules(switches):
    landscape = CurvedValley()
    settings = replace(RunSettings(rho=0.1, lr=0.01, steps=10, eigen_alpha=0.5), **switches)
    for method in ("SAM", "Eigen-SAM", "X-SAM"):
        trajectory = run_trajectory(landscape, (-1.0, 1.4), method, settings)
        for t in range(trajectory.steps):
            theta = torch.from_numpy(trajectory.positions[t])
            g = torch.from_numpy(trajectory.gradients[t])
            eps = torch.from_numpy(trajectory.perturbations[t])
            adversarial = torch.from_numpy(trajectory.adversarial_gradients[t])
            d = torch.from_numpy(trajectory.directions[t])
            v1 = torch.from_numpy(trajectory.top_eigenvectors[t])
            torch.testing.assert_close(g, landscape.gradient(theta))
            torch.testing.assert_close(adversarial, landscape.gradient(theta + eps))
            np.testing.assert_allclose(trajectory.positions[t + 1], trajectory.positions[t] - settings.lr * d.numpy())
            assert float(g @ v1) >= 0 and 0 <= trajectory.angle_gradient[t] <= 90
            assert trajectory.top_eigenvalues[t] == pytest.approx(
                float(torch.linalg.eigvalsh(landscape.hessian(theta))[-1])
            )
            if method == "SAM":
                torch.testing.assert_close(eps, sam_perturbation(g, rho=settings.rho))
                torch.testing.assert_close(d, adversarial)
                assert np.isnan(trajectory.used_eigenvectors[t]).all()
                continue
            used = torch.from_numpy(trajectory.used_eigenvectors[t])
            assert abs(float(used @ v1)) == pytest.approx(1.0)  # the exact v1, up to its sign
            if method == "Eigen-SAM":
                torch.testing.assert_close(eps, eigen_sam_perturbation(g, used, rho=settings.rho, alpha=0.5))
                torch.testing.assert_close(d, adversarial)
            else:
                expected = xsam_direction(
                    adversarial,
                    used,
                    alpha=settings.xsam_alpha,
                    angle_gate=settings.xsam_angle_gate,
                    normalize=settings.xsam_normalize,
                )
                torch.testing.assert_close(d, expected)
            cos = float(eps @ v1) / float(eps.norm())
            assert trajectory.cos_perturbation[t] == pytest.approx(cos)


@pytest.mark.parametrize("switches", XSAM_SWITCHES[:2])
def test_lambda1_gradient_rates_and_remainders_are_exact(switches):
    landscape = GaussianWells()
    settings = replace(RunSettings(rho=0.1, lr=0.001, steps=8), **switches)
    for method, trajectory in run_all(landscape, (-0.7, 0.5), settings).items():
        assert trajectory.lambda1_gradients.shape == (9, 2) and trajectory.remainders.shape == (8, 2)
        for t in range(trajectory.steps + 1):
            theta = torch.from_numpy(trajectory.positions[t])
            np.testing.assert_allclose(trajectory.lambda1_gradients[t], landscape.top_eigenvalue_gradient(theta))
        steps = np.diff(trajectory.positions, axis=0)
        np.testing.assert_allclose(trajectory.lambda1_rates, (steps * trajectory.lambda1_gradients[:-1]).sum(1))
        # small steps: the first-order change is the change (measured: within 1 % at lr = 0.001 here)
        np.testing.assert_allclose(trajectory.lambda1_rates, trajectory.lambda1_changes, rtol=0.02)
        if method == "GD":
            assert np.isnan(trajectory.remainders).all() and np.isnan(trajectory.remainder_rates).all()
            continue
        for t in range(trajectory.steps):
            theta = torch.from_numpy(trajectory.positions[t])
            eps = torch.from_numpy(trajectory.perturbations[t])
            expected = landscape.gradient(theta + eps) - landscape.gradient(theta) - landscape.hessian(theta) @ eps
            np.testing.assert_allclose(trajectory.remainders[t], expected.numpy(), rtol=1e-10, atol=1e-14)
        if method != "X-SAM":  # the direction is g_adv itself: r's part of the rate is −lr⟨r, ∇λ1⟩
            expected_rates = -settings.lr * (trajectory.remainders * trajectory.lambda1_gradients[:-1]).sum(1)
            np.testing.assert_allclose(trajectory.remainder_rates, expected_rates)


def test_on_a_quadratic_lambda1_does_not_move_and_there_is_no_remainder():
    trajectories = run_all(AnisotropicQuadratic(), (1.0, 1.5), RunSettings(steps=5))
    for method, trajectory in trajectories.items():
        assert not trajectory.lambda1_gradients.any() and not trajectory.lambda1_rates.any()
        if method != "GD":
            np.testing.assert_allclose(trajectory.remainders, 0.0, atol=1e-14)
            np.testing.assert_allclose(trajectory.remainder_rates, 0.0, atol=1e-14)


def test_gd_is_plain_gradient_descent_with_undefined_perturbation_angles():
    settings = RunSettings(lr=0.03, steps=5)
    trajectory = run_trajectory(LANDSCAPE, START, "GD", settings)
    theta = torch.tensor(START, dtype=torch.float64)
    for t in range(5):
        theta = theta - settings.lr * LANDSCAPE.gradient(theta)
        np.testing.assert_allclose(trajectory.positions[t + 1], theta.numpy(), rtol=1e-14)
    assert np.isnan(trajectory.cos_perturbation).all()
    np.testing.assert_array_equal(trajectory.angle_adversarial, trajectory.angle_gradient)


def test_runs_are_deterministic_and_tabulated():
    settings = RunSettings(steps=8, eigenvector="power", freq=2, seed=5)
    first, second = run_all(LANDSCAPE, START, settings), run_all(LANDSCAPE, START, settings)
    for method in METHODS:
        assert first[method].table().equals(second[method].table())
    table = first["X-SAM"].table()
    assert len(table) == 9 and set(table["method"]) == {"X-SAM"}
    assert {"x", "y", "loss", "lambda1", "angle_gradient", "cos_perturbation", "directions_x"} <= set(table.columns)
    assert {"lambda1_gradients_x", "lambda1_rates", "remainders_y", "remainder_rates"} <= set(table.columns)
    assert not math.isnan(table["lambda1_gradients_x"].iloc[-1])  # ∇λ1 exists at the end point too
    assert math.isnan(table["angle_gradient"].iloc[-1])  # the end point has no step


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rho": 0.0}, "rho"),
        ({"lr": -1.0}, "lr"),
        ({"steps": 0}, "steps"),
        ({"xsam_alpha": 2.5}, "xsam_alpha"),
        ({"xsam_orientation": "up"}, "xsam_orientation"),
        ({"eigenvector": "lanczos"}, "eigenvector"),
        ({"freq": 0}, "freq"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunSettings(**kwargs)


def test_bad_method_and_start_are_named():
    with pytest.raises(ValueError, match="method"):
        run_trajectory(LANDSCAPE, START, "Adam")
    with pytest.raises(ValueError, match="start"):
        run_trajectory(LANDSCAPE, (0.0, float("inf")), "SAM")


@pytest.mark.parametrize("eigenvector", ["exact", "power"])
def test_a_shorter_run_is_the_start_of_a_longer_one(eigenvector):
    settings = RunSettings(rho=0.15, lr=0.02, steps=20, eigenvector=eigenvector, freq=3)
    for method in METHODS:
        long = run_trajectory(LANDSCAPE, START, method, settings)
        short = run_trajectory(LANDSCAPE, START, method, replace(settings, steps=12))
        cut = long.truncated(12)
        for field in fields(Trajectory):
            if field.name != "method":
                np.testing.assert_array_equal(getattr(cut, field.name), getattr(short, field.name), err_msg=field.name)
    with pytest.raises(ValueError, match="steps"):
        long.truncated(21)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_reads_only_its_own_settings(method):
    base = RunSettings(rho=0.15, lr=0.02, steps=8, eigenvector="power", freq=3)
    others = {
        "rho": 0.25, "lr": 0.03, "steps": 8, "eigen_alpha": 0.9, "xsam_alpha": 1.5, "xsam_normalize": True,
        "xsam_angle_gate": True, "xsam_orientation": "as_computed", "eigenvector": "exact", "freq": 2,
        "power_iters": 2, "seed": 7,
    }  # fmt: skip
    reference = run_trajectory(LANDSCAPE, START, method, base).positions
    for name, value in others.items():
        moved = run_trajectory(LANDSCAPE, START, method, replace(base, **{name: value})).positions
        if name not in METHOD_SETTINGS[method]:
            np.testing.assert_array_equal(moved, reference, err_msg=f"{method} depends on {name}")
        elif name != "steps":
            assert not np.array_equal(moved, reference), f"{method} ignores {name}, listed in METHOD_SETTINGS"


def test_the_cache_recomputes_only_the_methods_a_change_affects():
    cache = TrajectoryCache()
    settings = RunSettings(rho=0.15, lr=0.02, steps=10)
    first = cache.trajectories("sharp_flat", LANDSCAPE, START, settings)
    assert cache.computed == METHODS
    rho = cache.trajectories("sharp_flat", LANDSCAPE, START, replace(settings, rho=0.2))
    assert cache.computed == ("SAM", "Eigen-SAM", "X-SAM") and rho["GD"] is first["GD"]
    cache.trajectories("sharp_flat", LANDSCAPE, START, replace(settings, rho=0.2, xsam_alpha=1.0))
    assert cache.computed == ("X-SAM",)
    again = cache.trajectories("sharp_flat", LANDSCAPE, START, settings)
    assert cache.computed == () and all(again[method] is first[method] for method in METHODS)
    shorter = cache.trajectories("sharp_flat", LANDSCAPE, START, replace(settings, steps=6))
    assert cache.computed == () and shorter["SAM"].steps == 6
    np.testing.assert_array_equal(shorter["SAM"].positions, first["SAM"].positions[:7])
    cache.trajectories("sharp_flat", LANDSCAPE, (-0.5, 0.8), settings)
    assert cache.computed == METHODS
