"""Per-group settings (ρ, α, η, freq) like lr, the plain step, the registry, the eval-mode guard and the tracker's
eigenvalue: each against formulas computed by hand here."""

from __future__ import annotations

import inspect

import pytest
import torch

from workbench.curvature import DenseOperator
from workbench.optim import ASAM, OPTIMIZERS, SAM, XSAM, EigenSAM, EigenTracker, PlainStep, optimizer_entry

from .quadratic import Quadratic
from .test_optim_training import batch, closure_for, small_cnn

THETA = torch.tensor([0.7, -0.4, 0.3, 0.5], dtype=torch.float64)
B = torch.tensor([0.1, 0.2, -0.1, 0.05], dtype=torch.float64)


def groups(problem: Quadratic, first: dict, second: dict) -> list[dict]:
    weights, bias = problem.pieces
    return [{"params": [weights], **first}, {"params": [bias], **second}]


def test_rho_per_group_scales_each_groups_share_of_the_unit_gradient():
    problem = Quadratic(THETA, b=B)
    optimizer = SAM(groups(problem, {}, {"rho": 0.2}), lr=0.1, rho=0.05)
    optimizer.step(problem.closure())
    g = problem.gradient_at(THETA)
    rho = torch.tensor([0.05, 0.05, 0.05, 0.2], dtype=torch.float64)
    eps = rho * g / g.norm()
    torch.testing.assert_close(optimizer.last_step.perturbation, eps)
    torch.testing.assert_close(problem.theta, THETA - 0.1 * problem.gradient_at(THETA + eps))


def test_rho_lives_in_param_groups_is_saved_and_a_scheduler_can_move_it():
    problem = Quadratic(THETA, b=B)
    optimizer = SAM(problem.parameters(), lr=0.1, rho=0.05)
    assert [group["rho"] for group in optimizer.param_groups] == [0.05] and optimizer.defaults["rho"] == 0.05
    for group in optimizer.param_groups:  # what a ρ schedule does between steps
        group["rho"] = 0.3
    optimizer.step(problem.closure())
    assert optimizer.last_step.perturbation_norm == pytest.approx(0.3)
    saved = optimizer.state_dict()
    assert saved["param_groups"][0]["rho"] == 0.3
    restored = SAM(Quadratic(THETA, b=B).parameters(), lr=0.1, rho=0.05)
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["rho"] == 0.3 and restored.step_count == 1


def test_asam_eta_per_group():
    problem = Quadratic(THETA, b=B)
    optimizer = ASAM(groups(problem, {}, {"eta": 0.5}), lr=0.1, rho=0.5, eta=0.01)
    optimizer.step(problem.closure())
    g = problem.gradient_at(THETA)
    scale = THETA.abs() + torch.tensor([0.01, 0.01, 0.01, 0.5], dtype=torch.float64)
    torch.testing.assert_close(optimizer.last_step.perturbation, 0.5 * scale**2 * g / (scale * g).norm())


def test_xsam_alpha_per_group_with_a_given_eigenvector():
    problem = Quadratic(THETA, b=B)
    optimizer = XSAM(groups(problem, {"alpha": 1.0}, {}), lr=0.1, rho=0.05, alpha=0.2, freq=100)
    v = problem.top_eigenvector
    optimizer.tracker.set_vector(v)
    optimizer.step(problem.closure())
    g = problem.gradient_at(THETA)
    adversarial = problem.gradient_at(THETA + 0.05 * g / g.norm())
    unit = adversarial / adversarial.norm()
    alpha = torch.tensor([1.0, 1.0, 1.0, 0.2], dtype=torch.float64)
    expected = unit - alpha * torch.dot(unit, v).abs() * v
    torch.testing.assert_close(problem.theta, THETA - 0.1 * expected)


def test_eigen_sam_alpha_per_group_with_a_given_eigenvector():
    problem = Quadratic(THETA, b=B)
    optimizer = EigenSAM(groups(problem, {}, {"alpha": 0.0}), lr=0.1, rho=0.1, alpha=0.5, freq=100)
    v = problem.top_eigenvector
    optimizer.tracker.set_vector(v)
    optimizer.step(problem.closure())
    g = problem.gradient_at(THETA)
    unit = g / g.norm()
    alpha = torch.tensor([0.5, 0.5, 0.5, 0.0], dtype=torch.float64)
    eps = 0.1 * (unit + alpha * torch.sign(g @ v) * (v - (unit @ v) * unit))
    torch.testing.assert_close(optimizer.last_step.perturbation, eps)


def test_freq_must_agree_across_groups_and_bad_group_values_are_named():
    problem = Quadratic(THETA, b=B)
    with pytest.raises(ValueError, match=r"freq must be the same in every parameter group.*\[3, 5\]"):
        EigenSAM(groups(problem, {"freq": 3}, {}), lr=0.1, freq=5)
    with pytest.raises(ValueError, match=r"rho must be in \(0, inf\), got -1"):
        SAM(groups(problem, {"rho": -1.0}, {}), lr=0.1)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 2\], got 3"):
        XSAM(groups(problem, {"alpha": 3.0}, {}), lr=0.1)


def test_plain_step_is_the_base_optimizer_with_a_record():
    by_us, by_torch = Quadratic(THETA, b=B), Quadratic(THETA, b=B)
    ours = PlainStep(by_us.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD(by_torch.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        gradient = by_us.gradient_at(by_us.theta)
        loss = ours.step(by_us.closure())
        theirs.zero_grad()
        by_torch().backward()
        theirs.step()
    assert torch.equal(by_us.theta, by_torch.theta)
    assert float(loss) == pytest.approx(float(by_us.forward().detach()), rel=1) and ours.step_count == 3
    record = ours.last_step
    torch.testing.assert_close(record.gradient, gradient)
    assert record.perturbation is None and record.scalars() == pytest.approx(
        {"step": 2.0, "gradient_norm": float(gradient.norm())}
    )
    with pytest.raises(ValueError, match="closure is required"):
        ours.step()


def test_refresh_without_model_refuses_train_mode_batchnorm_and_works_in_eval_mode():
    model = small_cnn()
    optimizer = EigenSAM(model.parameters(), lr=0.05, freq=1, power_iters=2)
    optimizer.step(closure_for(model, batch(0)))  # step 0: no refresh is due
    statistics = [model.norm.running_mean.clone(), model.norm.running_var.clone()]
    with pytest.raises(ValueError, match=r"ran BatchNorm in training mode.*Pass model=<your module>"):
        optimizer.step(closure_for(model, batch(1)))
    assert torch.equal(statistics[0], model.norm.running_mean) and torch.equal(statistics[1], model.norm.running_var)
    model.eval()
    optimizer.refresh_eigenvector(closure_for(model, batch(1)))
    assert optimizer.tracker.num_refreshes == 1


def test_tracker_eigenvalue_belongs_to_the_iterate_before_v_unless_exact():
    matrix = torch.diag(torch.tensor([4.0, 3.0, 1.0], dtype=torch.float64))
    published = EigenTracker(1, power_iters=2, refresh="power")
    exact = EigenTracker(1, power_iters=2, refresh="power", exact_eigenvalue=True)
    start = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64) / 3**0.5
    for tracker in (published, exact):
        tracker.set_vector(start)
        tracker.refresh(DenseOperator(matrix))
    middle = matrix @ start / (matrix @ start).norm()  # the iterate before the stored v
    stored = matrix @ middle / (matrix @ middle).norm()
    torch.testing.assert_close(published.vector, stored)
    torch.testing.assert_close(exact.vector, stored)
    assert published.eigenvalue == pytest.approx(float(middle @ matrix @ middle))
    assert exact.eigenvalue == pytest.approx(float(stored @ matrix @ stored))
    assert (published.num_hvps, exact.num_hvps) == (2, 3)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_registry_entry_builds_and_its_defaults_are_its_class_signature(name):
    entry = optimizer_entry(name)
    signature = inspect.signature(entry.cls).parameters
    assert entry.defaults() == {option: signature[option].default for option in entry.option_names}
    model = small_cnn()
    optimizer = entry.build(model.parameters(), model=model, seed=3, epoch_length=10, lr=0.05, momentum=0.9)
    optimizer.step(closure_for(model, batch(0)))
    assert optimizer.last_step.gradient_norm > 0
    assert entry.tracks_eigenvector == (optimizer.tracker is not None)


def test_registry_checks_option_names_and_values_without_a_model():
    with pytest.raises(ValueError, match=r"optimizer 'sam' takes no alpha \(it takes: rho\)"):
        optimizer_entry("sam").check_options({"alpha": 0.2})
    with pytest.raises(ValueError, match=r"optimizer 'sgd' takes no rho \(it takes: none of them\)"):
        optimizer_entry("sgd").check_options({"rho": 0.2})
    with pytest.raises(ValueError, match="orientation must be one of 'as_computed', 'along_gradient', 'along_adv"):
        optimizer_entry("xsam").check_options({"orientation": "up"})
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'sam', 'asam', 'eigensam', 'xsam'"):
        optimizer_entry("adam")
    optimizer_entry("xsam").check_options({"orientation": "along_adversarial", "alpha": 1.0})
