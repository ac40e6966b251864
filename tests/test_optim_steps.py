"""One full step of each optimizer on a quadratic against the formulas computed by hand here."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.optim import ASAM, SAM, XSAM, EigenSAM

from .quadratic import Quadratic

THETA = torch.tensor([0.7, -0.4, 0.3, 0.5], dtype=torch.float64)
B = torch.tensor([0.1, 0.2, -0.1, 0.05], dtype=torch.float64)


def unit(vector: torch.Tensor) -> torch.Tensor:
    return vector / vector.norm()


def degrees_between(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.degrees(math.acos(float(torch.dot(unit(a), unit(b)))))


def test_sam_two_steps_with_momentum_and_weight_decay():
    problem = Quadratic(THETA, b=B)
    lr, momentum, decay, rho = 0.1, 0.9, 0.01, 0.05
    optimizer = SAM(problem.parameters(), lr=lr, momentum=momentum, weight_decay=decay, rho=rho)
    theta, buffer = THETA.clone(), None
    for _ in range(2):
        loss = optimizer.step(problem.closure())
        assert float(loss) == pytest.approx(float(0.5 * theta @ problem.A @ theta + B @ theta))  # the loss at θ
        g = problem.gradient_at(theta)
        eps = rho * g / g.norm()
        d = problem.gradient_at(theta + eps) + decay * theta  # SGD adds weight decay to the gradient it is given
        buffer = d if buffer is None else momentum * buffer + d
        theta = theta - lr * buffer
    torch.testing.assert_close(problem.theta, theta)
    record = optimizer.last_step
    assert record.step == 1 and optimizer.step_count == 2 and not record.refreshed
    assert record.perturbation_norm == pytest.approx(rho)
    assert math.isnan(record.cos_perturbation_eigenvector) and math.isnan(record.eigenvalue)
    torch.testing.assert_close(record.gradient, g)
    torch.testing.assert_close(record.perturbation, eps)
    assert record.gradient_norm == pytest.approx(float(g.norm()))


def test_first_and_second_step_match_step():
    by_closure, manual = Quadratic(THETA, b=B), Quadratic(THETA, b=B)
    first = SAM(by_closure.parameters(), lr=0.1, momentum=0.5)
    second = SAM(manual.parameters(), lr=0.1, momentum=0.5)
    for _ in range(3):
        first.step(by_closure.closure())
        manual().backward()
        second.first_step(zero_grad=True)
        manual().backward()
        second.second_step(zero_grad=True)
    assert torch.equal(by_closure.theta, manual.theta)
    assert second.last_step.step == 2


def test_asam_step_by_hand_with_an_unscaled_group():
    problem = Quadratic(THETA, b=B)
    lr, rho, eta = 0.1, 0.5, 0.01
    weights, bias = problem.pieces
    optimizer = ASAM([{"params": [weights]}, {"params": [bias], "adaptive": False}], lr=lr, rho=rho, eta=eta)
    optimizer.step(problem.closure())
    g = problem.gradient_at(THETA)
    scale = torch.cat([THETA[:3].abs() + eta, torch.ones(1, dtype=torch.float64)])
    eps = rho * scale**2 * g / (scale * g).norm()
    torch.testing.assert_close(optimizer.last_step.perturbation, eps)
    torch.testing.assert_close(problem.theta, THETA - lr * problem.gradient_at(THETA + eps))


@pytest.mark.parametrize("flip", [1.0, -1.0])
@pytest.mark.parametrize("theta_sign", [1.0, -1.0])
def test_eigen_sam_step_by_hand_with_the_sign_rule(flip, theta_sign):
    problem = Quadratic(theta_sign * THETA, b=B)
    lr, rho, alpha = 0.1, 0.1, 0.2
    v1 = problem.top_eigenvector
    optimizer = EigenSAM(problem.parameters(), lr=lr, rho=rho, alpha=alpha, freq=1000)
    optimizer.tracker.set_vector(flip * v1)
    optimizer.step(problem.closure())
    theta = theta_sign * THETA
    g = problem.gradient_at(theta)
    g_hat = unit(g)
    s = torch.sign(g @ (flip * v1))
    eps = rho * (g_hat + alpha * s * (flip * v1 - (g_hat @ (flip * v1)) * g_hat))
    torch.testing.assert_close(optimizer.last_step.perturbation, eps)
    torch.testing.assert_close(problem.theta, theta - lr * problem.gradient_at(theta + eps))
    # ε is the same for v and −v: its cosine with the uphill-oriented v is positive whichever sign v has
    assert optimizer.last_step.cos_perturbation_eigenvector * float(s) > 0


def test_eigen_sam_refreshes_on_the_published_schedule_and_is_sam_before():
    problem, reference = Quadratic(THETA, b=B), Quadratic(THETA, b=B)
    optimizer = EigenSAM(problem.parameters(), lr=0.05, rho=0.1, freq=2, refresh="power")
    sam = SAM(reference.parameters(), lr=0.05, rho=0.1)
    refreshed = []
    for step in range(5):
        if step < 2:
            sam.step(reference.closure())
        optimizer.step(problem.closure())
        refreshed.append(optimizer.last_step.refreshed)
        if step < 2:
            assert torch.equal(problem.theta, reference.theta)  # no v yet: exactly SAM
    assert refreshed == [False, False, True, False, True]
    assert optimizer.tracker.num_refreshes == 2 and optimizer.tracker.num_hvps == 10
    v = optimizer.tracker.vector
    assert float(torch.dot(v, problem.top_eigenvector).abs()) > 0.99  # λ2/λ1 = 1/4: 10 products suffice
    assert optimizer.last_step.eigenvalue == pytest.approx(4.0, rel=1e-3)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0, 2.0])
@pytest.mark.parametrize("side", ["acute", "obtuse"])
@pytest.mark.parametrize("normalize_direction", [True, False])
@pytest.mark.parametrize("angle_gate", [False, True])
def test_xsam_step_by_hand(alpha, side, normalize_direction, angle_gate):
    problem = Quadratic(THETA, b=B)
    lr, rho = 0.1, 0.05
    g = problem.gradient_at(THETA)
    g_adv = problem.gradient_at(THETA + rho * unit(g))
    v1 = problem.top_eigenvector
    v = v1 if bool(g_adv @ v1 > 0) == (side == "acute") else -v1  # the tracked vector, on the side to test
    optimizer = XSAM(
        problem.parameters(),
        lr=lr,
        rho=rho,
        alpha=alpha,
        freq=1000,
        normalize_direction=normalize_direction,
        angle_gate=angle_gate,
    )
    optimizer.tracker.set_vector(v)
    optimizer.step(problem.closure())
    angle = degrees_between(g_adv, v)
    assert (angle < 90) == (side == "acute")  # the case this parameter stands for
    c = unit(g_adv) @ v
    corrected = unit(g_adv) - alpha * torch.sign(g_adv @ v) * c * v
    if angle_gate and angle > 90:
        corrected = unit(g_adv)
    if not normalize_direction:
        corrected = g_adv.norm() * corrected
    torch.testing.assert_close(problem.theta, THETA - lr * corrected)
    record = optimizer.last_step
    assert record.angle_adversarial_eigenvector == pytest.approx(angle)
    assert record.angle_descent_eigenvector == pytest.approx(degrees_between(corrected, v))
    assert record.angle_gradient_eigenvector == pytest.approx(degrees_between(g, v))
    assert record.orientation_sign == 1.0


def test_xsam_momentum_and_weight_decay_act_on_the_corrected_direction():
    problem = Quadratic(THETA, b=B)
    lr, momentum, decay, alpha = 0.1, 0.9, 0.01, 0.5
    optimizer = XSAM(problem.parameters(), lr=lr, momentum=momentum, weight_decay=decay, alpha=alpha, freq=1000)
    v = problem.top_eigenvector
    optimizer.tracker.set_vector(v)
    theta, buffer = THETA.clone(), None
    for _ in range(2):
        optimizer.step(problem.closure())
        g_adv = problem.gradient_at(theta + 0.05 * unit(problem.gradient_at(theta)))
        d = unit(g_adv) - alpha * (unit(g_adv) @ v).abs() * v + decay * theta
        buffer = d if buffer is None else momentum * buffer + d
        theta = theta - lr * buffer
    torch.testing.assert_close(problem.theta, theta)


@pytest.mark.parametrize("orientation", ["along_gradient", "along_adversarial"])
@pytest.mark.parametrize("flip", [1.0, -1.0])
def test_xsam_orientation_conventions_orient_the_tracked_vector(orientation, flip):
    problem = Quadratic(THETA, b=B)
    optimizer = XSAM(problem.parameters(), lr=0.1, alpha=1.0, freq=1000, orientation=orientation)
    v1 = problem.top_eigenvector
    optimizer.tracker.set_vector(flip * v1)
    optimizer.step(problem.closure())
    g = problem.gradient_at(THETA)
    g_adv = problem.gradient_at(THETA + 0.05 * unit(g))
    reference = g if orientation == "along_gradient" else g_adv
    v = v1 if reference @ v1 >= 0 else -v1  # independent of the tracked sign
    expected = unit(g_adv) - (unit(g_adv) @ v).abs() * v
    torch.testing.assert_close(problem.theta, THETA - 0.1 * expected)
    assert optimizer.last_step.orientation_sign == float(torch.sign(reference @ (flip * v1)))
    if orientation == "along_adversarial":  # α = 1 then always removes the v-component
        assert optimizer.last_step.angle_descent_eigenvector == pytest.approx(90.0)


def test_xsam_as_computed_depends_on_the_tracked_sign_as_published():
    results = []
    for flip in (1.0, -1.0):
        problem = Quadratic(THETA, b=B)
        optimizer = XSAM(problem.parameters(), lr=0.1, alpha=0.5, freq=1000)
        optimizer.tracker.set_vector(flip * problem.top_eigenvector)
        optimizer.step(problem.closure())
        results.append(problem.theta)
    assert not torch.allclose(results[0], results[1])


def test_xsam_is_sam_until_its_first_refresh():
    problem, reference = Quadratic(THETA, b=B), Quadratic(THETA, b=B)
    optimizer = XSAM(problem.parameters(), lr=0.1, momentum=0.9, freq=3)
    sam = SAM(reference.parameters(), lr=0.1, momentum=0.9, rho=0.05)
    for _ in range(3):
        optimizer.step(problem.closure())
        sam.step(reference.closure())
        assert math.isnan(optimizer.last_step.angle_adversarial_eigenvector)
    assert torch.equal(problem.theta, reference.theta)
    optimizer.step(problem.closure())
    assert optimizer.last_step.refreshed and not math.isnan(optimizer.last_step.angle_adversarial_eigenvector)


def test_learning_rate_schedulers_drive_the_base_optimizer():
    problem = Quadratic(THETA, b=B)
    optimizer = SAM(problem.parameters(), lr=0.1, rho=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    optimizer.step(problem.closure())
    scheduler.step()
    theta = problem.theta
    optimizer.step(problem.closure())
    g_adv = problem.gradient_at(theta + 0.05 * unit(problem.gradient_at(theta)))
    torch.testing.assert_close(problem.theta, theta - 0.05 * g_adv)
