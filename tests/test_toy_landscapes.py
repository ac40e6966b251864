"""Toy landscapes: hand-derived gradients and Hessians against autograd, batches, minima, basins, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.toy.basins import basin_name, flow_to_minimum
from workbench.toy.landscapes import (
    LANDSCAPES,
    AnisotropicQuadratic,
    GaussianWells,
    Landscape,
    SharpFlatBasins,
    make_landscape,
)

LANDSCAPE_VARIANTS = [
    ("quadratic", {}),
    ("quadratic", {"lambda_max": 3.0, "lambda_min": 3.0, "angle_degrees": -70.0, "center": (0.5, -0.2)}),
    ("sharp_flat", {}),
    ("sharp_flat", {"sharp_curvatures": (9.0, 30.0), "flat_center": (1.5, 0.5), "smoothing": 0.5}),
    ("gaussian_wells", {}),
    ("gaussian_wells", {"depth": 2.0, "sharp_widths": (0.3, 0.25), "flat_center": (1.2, 0.4), "confinement": 0.0}),
    ("curved_valley", {}),
    ("curved_valley", {"steepness": 4.0, "bend": -0.5, "slope": 3.0}),
]


def random_points(landscape, count: int = 16) -> torch.Tensor:
    """Points spread over the landscape's view box."""
    generator = torch.Generator().manual_seed(0)
    (x_low, x_high), (y_low, y_high) = landscape.bounds
    unit = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    return torch.stack([x_low + (x_high - x_low) * unit[:, 0], y_low + (y_high - y_low) * unit[:, 1]], dim=1)


@pytest.mark.parametrize(("name", "params"), LANDSCAPE_VARIANTS)
def test_gradient_and_hessian_match_autograd(name, params):
    landscape = make_landscape(name, **params)
    points = random_points(landscape)
    for theta in points:
        torch.testing.assert_close(landscape.gradient(theta), torch.func.grad(landscape.value)(theta))
        torch.testing.assert_close(landscape.hessian(theta), torch.func.hessian(landscape.value)(theta))
    # a batch (m, 2) gives the single-point results row by row
    torch.testing.assert_close(landscape.value(points), torch.stack([landscape.value(p) for p in points]))
    torch.testing.assert_close(landscape.gradient(points), torch.stack([landscape.gradient(p) for p in points]))
    torch.testing.assert_close(landscape.hessian(points), torch.stack([landscape.hessian(p) for p in points]))


@pytest.mark.parametrize(("name", "params"), LANDSCAPE_VARIANTS)
def test_third_derivative_and_eigenvalue_gradient_match_autograd(name, params):
    landscape = make_landscape(name, **params)
    points = random_points(landscape)
    isotropic = name == "quadratic" and params.get("lambda_max") == params.get("lambda_min", 1.0)

    def top_eigenvalue(theta):
        return torch.linalg.eigvalsh(torch.func.hessian(landscape.value)(theta))[-1]

    for theta in points:
        torch.testing.assert_close(
            landscape.third_derivative(theta), torch.func.jacfwd(torch.func.hessian(landscape.value))(theta)
        )
        expected = torch.zeros(2, dtype=torch.float64) if isotropic else torch.func.grad(top_eigenvalue)(theta)
        torch.testing.assert_close(landscape.top_eigenvalue_gradient(theta), expected)
    torch.testing.assert_close(
        landscape.third_derivative(points), torch.stack([landscape.third_derivative(p) for p in points])
    )
    torch.testing.assert_close(
        landscape.top_eigenvalue_gradient(points), torch.stack([landscape.top_eigenvalue_gradient(p) for p in points])
    )


class CubicBowl(Landscape):
    """L = ½(x² + y²) + x³: λ1 = λ2 = 1 at x = 0, where λ1 has a kink (∇²L = diag(1 + 6x, 1))."""

    name, bounds, minima = "cubic", ((-1.0, 1.0), (-1.0, 1.0)), ()

    def value(self, theta):
        return 0.5 * (theta**2).sum(-1) + theta[..., 0] ** 3

    def gradient(self, theta):
        return theta + torch.stack([3 * theta[..., 0] ** 2, torch.zeros_like(theta[..., 0])], -1)

    def hessian(self, theta):
        return torch.diag_embed(torch.stack([1 + 6 * theta[..., 0], torch.ones_like(theta[..., 0])], -1))

    def third_derivative(self, theta):
        third = theta.new_zeros(*theta.shape[:-1], 2, 2, 2)
        third[..., 0, 0, 0] = 6.0
        return third


def test_eigenvalue_gradient_is_nan_at_a_kink_and_one_sided_beside_it():
    gradients = CubicBowl().top_eigenvalue_gradient(torch.tensor([[0.0, 0.5], [0.1, 0.5], [-0.1, 0.5]]).double())
    assert torch.isnan(gradients[0]).all()
    torch.testing.assert_close(gradients[1:], torch.tensor([[6.0, 0.0], [0.0, 0.0]]).double())


@pytest.mark.parametrize(("name", "params"), LANDSCAPE_VARIANTS)
def test_minima_are_stationary_with_positive_curvature(name, params):
    landscape = make_landscape(name, **params)
    assert landscape.minima
    for minimum in landscape.minima:
        theta = torch.tensor(minimum.location, dtype=torch.float64)
        assert float(landscape.gradient(theta).norm()) < 1e-10
        eigenvalues = torch.linalg.eigvalsh(landscape.hessian(theta))
        assert minimum.eigenvalues == pytest.approx((float(eigenvalues[1]), float(eigenvalues[0])))
        assert minimum.eigenvalues[1] > 0
        (x_low, x_high), (y_low, y_high) = landscape.bounds
        assert x_low < minimum.location[0] < x_high and y_low < minimum.location[1] < y_high


def test_quadratic_top_eigenvector_is_at_the_given_angle():
    landscape = AnisotropicQuadratic(lambda_max=8.0, lambda_min=2.0, angle_degrees=30.0)
    eigenvalues, eigenvectors = torch.linalg.eigh(landscape.hessian(torch.zeros(2, dtype=torch.float64)))
    assert eigenvalues.tolist() == pytest.approx([2.0, 8.0])
    direction = torch.tensor([np.cos(np.pi / 6), np.sin(np.pi / 6)], dtype=torch.float64)
    assert abs(float(eigenvectors[:, 1] @ direction)) == pytest.approx(1.0)


def test_sharp_flat_basins_keep_their_curvature_up_to_the_ridge():
    landscape = SharpFlatBasins()
    sharp, flat = landscape.minima
    assert (sharp.name, flat.name) == ("sharp", "flat")
    assert sharp.eigenvalues == pytest.approx((25.0, 5.0)) and flat.eigenvalues == pytest.approx((2.0, 1.0))
    assert sharp.value == pytest.approx(flat.value, abs=1e-12)  # equal depth: only the sharpness differs
    inside_sharp = torch.tensor([-1.3, 0.2], dtype=torch.float64)  # q_s = 1.2, q_f = 5.3: far from the ridge
    torch.testing.assert_close(landscape.hessian(inside_sharp), torch.diag(torch.tensor([25.0, 5.0])).double())


def test_gaussian_wells_have_a_sharp_and_a_flat_minimum_of_similar_depth():
    sharp, flat = GaussianWells().minima
    assert (sharp.name, flat.name) == ("sharp", "flat")
    assert sharp.sharpness > 10 * flat.sharpness  # measured: λ1 ≈ 24.8 against ≈ 2.1
    assert sharp.value == pytest.approx(flat.value, abs=0.05)


def test_gradient_flow_reaches_the_minimum_of_each_basin():
    landscape = GaussianWells()
    sharp, flat = (np.array(m.location) for m in landscape.minima)
    near = [sharp + np.array([0.05, 0.3]), flat + np.array([-0.4, -0.5]), sharp + np.array([0.0, -0.7])]
    assert flow_to_minimum(landscape, near).tolist() == [0, 1, 0]
    assert basin_name(landscape, tuple(flat + np.array([0.3, 0.3]))) == "flat"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("quadratic", {"lambda_max": 1.0, "lambda_min": 2.0}, "lambda_min"),
        ("quadratic", {"lambda_max": -1.0}, "lambda_max"),
        ("quadratic", {"center": (1.0,)}, "center"),
        ("sharp_flat", {"sharp_curvatures": (1.0, 1.0)}, "sharp_curvatures"),
        ("sharp_flat", {"flat_curvatures": (0.0, 1.0)}, "flat_curvatures"),
        ("sharp_flat", {"smoothing": 0.0}, "smoothing"),
        ("gaussian_wells", {"sharp_widths": (0.9, 0.9)}, "sharp_widths"),
        ("gaussian_wells", {"flat_widths": (0.0, 1.0)}, "flat_widths"),
        ("gaussian_wells", {"confinement": float("nan")}, "confinement"),
        ("curved_valley", {"steepness": 0.0}, "steepness"),
        ("ridge", {}, "name"),
    ],
)
def test_bad_parameters_name_the_parameter(name, params, message):
    with pytest.raises(ValueError, match=message):
        make_landscape(name, **params)


def test_flow_rejects_points_of_the_wrong_shape():
    with pytest.raises(ValueError, match="points"):
        flow_to_minimum(GaussianWells(), [0.0, 1.0, 2.0])


def test_registry_names_match_classes():
    assert all(cls.name == name for name, cls in LANDSCAPES.items())
