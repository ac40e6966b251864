"""The pure rules of workbench.optim.rules against formulas worked out by hand on small vectors."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.optim.rules import (
    angle_degrees,
    asam_perturbation,
    cosine,
    eigen_sam_perturbation,
    orientation_sign,
    sam_perturbation,
    xsam_direction,
)


def vec(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_angles_and_cosines_by_hand():
    assert float(angle_degrees(vec(1, 0), vec(1, 1))) == pytest.approx(45.0)
    assert float(angle_degrees(vec(1, 0), vec(-1, 1))) == pytest.approx(135.0)
    assert float(angle_degrees(vec(2, 0), vec(-3, 0))) == pytest.approx(180.0)
    assert float(cosine(vec(3, 4), vec(4, 3))) == pytest.approx(24 / 25)
    assert math.isnan(float(cosine(vec(0, 0), vec(1, 0))))
    assert math.isnan(float(angle_degrees(vec(1, 0), vec(0, 0))))


def test_sam_perturbation_has_radius_rho_along_the_gradient():
    torch.testing.assert_close(sam_perturbation(vec(3, 4), rho=0.5), vec(0.3, 0.4))
    torch.testing.assert_close(sam_perturbation(vec(0, 0), rho=0.5), vec(0, 0))  # no NaN at a stationary point


def test_asam_perturbation_by_hand():
    g, theta, rho, eta = vec(1.0, -2.0, 0.5), vec(0.5, -1.0, 0.0), 0.3, 0.1
    t = vec(0.6, 1.1, 0.1)  # |θ| + η
    expected = rho * t**2 * g / torch.linalg.vector_norm(t * g)
    torch.testing.assert_close(asam_perturbation(g, theta, rho=rho, eta=eta), expected)
    mask = torch.tensor([True, True, False])
    t_masked = vec(0.6, 1.1, 1.0)
    expected_masked = rho * t_masked**2 * g / torch.linalg.vector_norm(t_masked * g)
    torch.testing.assert_close(asam_perturbation(g, theta, rho=rho, eta=eta, adaptive=mask), expected_masked)


@pytest.mark.parametrize("flip", [1.0, -1.0])
def test_eigen_sam_perturbation_by_hand_and_independent_of_the_sign_of_v(flip):
    g, v, rho, alpha = vec(3, 0), vec(0.6, 0.8), 0.1, 0.5
    # ĝ = (1, 0); ⟨g, v⟩ > 0; v − ⟨ĝ, v⟩ĝ = (0, 0.8)  →  ε = 0.1·[(1, 0) + 0.5·(0, 0.8)]
    torch.testing.assert_close(eigen_sam_perturbation(g, flip * v, rho=rho, alpha=alpha), vec(0.1, 0.04))
    # the uphill sign: with ⟨g, v⟩ < 0 the orthogonal part is −(v − ⟨ĝ, v⟩ĝ)
    v_down = vec(-0.6, 0.8)
    torch.testing.assert_close(eigen_sam_perturbation(g, flip * v_down, rho=rho, alpha=alpha), vec(0.1, -0.04))


def test_eigen_sam_perturbation_adds_nothing_for_v_orthogonal_to_g():
    torch.testing.assert_close(eigen_sam_perturbation(vec(2, 0), vec(0, 1), rho=0.1, alpha=0.5), vec(0.1, 0))


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0, 2.0])
@pytest.mark.parametrize("normalize", [True, False])
def test_xsam_direction_by_hand_on_both_sides_of_90_degrees(alpha, normalize):
    v = vec(1, 0)
    acute, obtuse = vec(3, 4), vec(-3, 4)  # ∠(g_adv, v) ≈ 53° and ≈ 127°, c = ±0.6, ‖g_adv‖ = 5
    scale = 1.0 if normalize else 5.0
    # acute: v-component 0.6·(1 − α); obtuse: −0.6·(1 + α); the orthogonal component 0.8 untouched
    expected_acute = scale * vec(0.6 * (1 - alpha), 0.8)
    expected_obtuse = scale * vec(-0.6 * (1 + alpha), 0.8)
    torch.testing.assert_close(xsam_direction(acute, v, alpha=alpha, normalize=normalize), expected_acute)
    torch.testing.assert_close(xsam_direction(obtuse, v, alpha=alpha, normalize=normalize), expected_obtuse)
    gated = xsam_direction(obtuse, v, alpha=alpha, normalize=normalize, angle_gate=True)
    torch.testing.assert_close(gated, scale * vec(-0.6, 0.8))  # the gate leaves angles > 90° alone
    gated_acute = xsam_direction(acute, v, alpha=alpha, normalize=normalize, angle_gate=True)
    torch.testing.assert_close(gated_acute, expected_acute)


def test_xsam_direction_flips_with_the_sign_of_v():
    g_adv, v = vec(3, 4), vec(1, 0)
    # with −v the same g_adv is on the obtuse side: the v-component grows instead of shrinking
    torch.testing.assert_close(xsam_direction(g_adv, -v, alpha=0.5), vec(0.6 * 1.5, 0.8))


def test_orientation_sign_points_v_along_the_reference():
    assert float(orientation_sign(vec(1, 0), vec(-2, 1))) == -1.0
    assert float(orientation_sign(vec(1, 0), vec(2, 1))) == 1.0
    assert float(orientation_sign(vec(1, 0), vec(0, 1))) == 1.0  # orthogonal: keep v
