"""EigenTracker: schedule, warm start, sign handling, state, and agreement with top_eigenpairs on a batch Hessian."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
import torch
import torch.nn.functional as F

from workbench.curvature import DenseOperator, HessianOperator, top_eigenpairs
from workbench.optim import XSAM, EigenSAM, EigenTracker
from workbench.optim.closure_hessian import backward_with_graph, closure_hessian


def dense(*spectrum: float, seed: int = 0) -> tuple[DenseOperator, torch.Tensor]:
    n = len(spectrum)
    q = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).Q
    return DenseOperator(q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T), q


def test_published_schedule_skips_step_zero():
    tracker = EigenTracker(freq=3)
    assert [step for step in range(11) if tracker.due(step)] == [3, 6, 9]


def test_schedule_restarts_every_epoch_like_enumerate_train_loader():
    tracker = EigenTracker(freq=2, epoch_length=5)  # batch index within the epoch: 0 1 2 3 4 | 0 1 2 3 4 | ...
    assert [step for step in range(15) if tracker.due(step)] == [2, 4, 7, 9, 12, 14]


def test_refresh_is_warm_started_from_the_previous_vector():
    op, _ = dense(3.0, 2.0, 1.0)
    tracker = EigenTracker(freq=1, power_iters=1, refresh="power")
    start = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    tracker.set_vector(start)
    tracker.refresh(op)
    unit = start / start.norm()
    expected = op.matrix @ unit
    torch.testing.assert_close(tracker.vector, expected / expected.norm())
    assert tracker.eigenvalue == pytest.approx(float(unit @ op.matrix @ unit))  # Rayleigh quotient of the start
    assert (tracker.num_refreshes, tracker.num_hvps) == (1, 1)


def test_first_refresh_is_seeded():
    op, _ = dense(5.0, 1.0, 0.5, -0.5)
    vectors = []
    for seed in (7, 7, 8):
        tracker = EigenTracker(freq=1, power_iters=1, refresh="power", seed=seed)
        tracker.refresh(op)
        vectors.append(tracker.vector)
    assert torch.equal(vectors[0], vectors[1])
    assert not torch.allclose(vectors[0], vectors[2])


def test_power_refresh_converges_to_v1():
    op, q = dense(5.0, 1.0, 0.5, -0.5)
    tracker = EigenTracker(freq=1, power_iters=30, refresh="power")
    tracker.refresh(op)
    assert float(torch.dot(tracker.vector, q[:, 0]).abs()) > 1 - 1e-12
    assert tracker.eigenvalue == pytest.approx(5.0)


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_refresh_keeps_the_side_of_the_previous_vector(side):
    op, q = dense(4.0, 1.0, 0.5, 0.2)
    tracker = EigenTracker(freq=1, power_iters=3, refresh="power")
    tracker.set_vector(side * q[:, 0] + 0.01 * q[:, 1])
    tracker.refresh(op)
    assert float(torch.dot(tracker.vector, side * q[:, 0])) > 0.999
    assert tracker.num_hvps == 3


def test_power_refresh_keeps_the_side_even_when_the_dominant_eigenvalue_is_negative():
    """Plain power iteration would flip v at every product here (odd count); the tracker keeps v's side."""
    op, q = dense(-4.0, 1.0, 0.5)
    tracker = EigenTracker(freq=1, power_iters=3, refresh="power")
    tracker.set_vector(q[:, 0])
    tracker.refresh(op)
    torch.testing.assert_close(tracker.vector, q[:, 0])
    assert tracker.eigenvalue == pytest.approx(-4.0)


def test_state_dict_round_trip():
    op, _ = dense(3.0, 2.0, 1.0)
    tracker = EigenTracker(freq=2, power_iters=2, refresh="power", seed=3)
    tracker.refresh(op)
    restored = EigenTracker(freq=2, power_iters=2, refresh="power", seed=99)
    restored.load_state_dict(tracker.state_dict())
    assert torch.equal(restored.vector, tracker.vector)
    assert (restored.eigenvalue, restored.num_refreshes, restored.num_hvps, restored.seed) == (
        tracker.eigenvalue,
        1,
        2,
        3,
    )
    with pytest.raises(ValueError, match="state is missing the tracker entries"):
        restored.load_state_dict({"vector": None})


def test_refresh_agrees_with_top_eigenpairs_on_the_batch_hessian(cnn_problem):
    """The optimizer's closure-driven refresh (eval mode, exact HVPs) against Lanczos on HessianOperator."""
    model, x, y = cnn_problem.model, cnn_problem.inputs, cnn_problem.targets
    exact = top_eigenpairs(HessianOperator(model, F.cross_entropy, (x, y)), k=1, tol=1e-8)
    values = torch.linalg.eigvalsh(cnn_problem.hessian)
    assert float(exact.eigenvalues[0]) == pytest.approx(float(values[-1]), rel=1e-6)
    assert float(values[-1]) > abs(float(values[0]))  # the top eigenvalue is also the largest in magnitude
    buffers = [b.clone() for b in model.buffers()]

    def closure() -> torch.Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    warm = EigenSAM(model.parameters(), lr=0.1, refresh="power", model=model)  # 5 products from v1: a fixed point
    warm.tracker.set_vector(exact.eigenvectors[0])
    warm.refresh_eigenvector(closure)
    assert float(torch.dot(warm.tracker.vector, exact.eigenvectors[0])) > 1 - 1e-8
    assert warm.tracker.eigenvalue == pytest.approx(float(exact.eigenvalues[0]), rel=1e-8)
    cold = EigenSAM(model.parameters(), lr=0.1, power_iters=300, refresh="power", model=model)
    cold.refresh_eigenvector(closure)
    assert float(torch.dot(cold.tracker.vector, exact.eigenvectors[0]).abs()) > 0.999
    assert cold.tracker.eigenvalue == pytest.approx(float(exact.eigenvalues[0]), rel=1e-4)
    assert model.training and all(torch.equal(a, b) for a, b in zip(buffers, model.buffers(), strict=True))
    assert all(p.grad is None for p in model.parameters())


def test_default_ritz_refresh_agrees_with_top_eigenpairs_on_the_batch_hessian(cnn_problem):
    """The default refresh (Rayleigh–Ritz to a residual tolerance, through the closure in eval mode) against
    Lanczos: started at v1 it stops after the fewest products, 2."""
    model, x, y = cnn_problem.model, cnn_problem.inputs, cnn_problem.targets
    exact = top_eigenpairs(HessianOperator(model, F.cross_entropy, (x, y)), k=1, tol=1e-8)

    def closure() -> torch.Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    warm = EigenSAM(model.parameters(), lr=0.1, model=model)
    warm.tracker.set_vector(exact.eigenvectors[0])
    warm.refresh_eigenvector(closure)
    assert warm.tracker.num_hvps == 2
    assert float(torch.dot(warm.tracker.vector, exact.eigenvectors[0])) > 1 - 1e-8
    assert warm.tracker.eigenvalue == pytest.approx(float(exact.eigenvalues[0]), rel=1e-8)
    cold = EigenSAM(model.parameters(), lr=0.1, power_iters=40, model=model)
    cold.refresh_eigenvector(closure)
    assert float(torch.dot(cold.tracker.vector, exact.eigenvectors[0]).abs()) > 1 - 1e-6


def test_closure_hessian_releases_the_graph_without_garbage_collection(mlp_problem):
    model, x, y = mlp_problem.model, mlp_problem.inputs, mlp_problem.targets
    params = list(model.parameters())
    graph_refs = []

    def closure() -> torch.Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        graph_refs.append(weakref.ref(params[0].grad))  # a gradient that carries its graph
        return loss

    gc.disable()
    try:
        with closure_hessian(closure, params) as hessian:
            vector = torch.ones(hessian.num_params, dtype=torch.float64)
            torch.testing.assert_close(hessian.batched_matvec(vector[None])[0], mlp_problem.hessian @ vector)
            assert graph_refs[0]() is not None and graph_refs[0]().grad_fn is not None
        del hessian
        assert graph_refs[0]() is None  # freed by reference counting alone: no cycle was left behind
    finally:
        gc.enable()


def test_backward_with_graph_affects_only_the_calling_thread():
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    seen = {}

    def other_thread() -> None:
        (weight**3).sum().backward()
        seen["graph"] = weight.grad.grad_fn is not None

    with backward_with_graph():
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        weight.grad = None
        (weight**3).sum().backward()
        assert weight.grad.grad_fn is not None
    weight.grad = None
    assert seen == {"graph": False}


class TestBadInput:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"freq": 0}, "freq must be an integer >= 1"),
            ({"freq": 2, "power_iters": 0}, "power_iters must be an integer >= 1"),
            ({"freq": 2, "epoch_length": 0}, "epoch_length must be an integer >= 1"),
        ],
    )
    def test_bad_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            EigenTracker(**kwargs)

    def test_zero_vector(self):
        with pytest.raises(ValueError, match="vector must be a non-zero flat tensor"):
            EigenTracker(freq=1).set_vector(torch.zeros(3))

    def test_vector_of_the_wrong_size(self):
        tracker = EigenTracker(freq=1)
        tracker.set_vector(torch.ones(2, dtype=torch.float64))
        with pytest.raises(ValueError, match="has 2 entries but the operator acts on 3"):
            tracker.refresh(dense(1.0, 2.0, 3.0)[0])


def test_ritz_refresh_by_hand_and_its_eigenvalue():
    """refresh="ritz": Rayleigh–Ritz on span{u, Hu} from the previous vector u, then v = Hy/‖Hy‖ on u's side."""
    op, q = dense(4.0, 2.0, 1.0, -0.5)
    previous = q[:, 0] + 0.3 * q[:, 1] + 0.2 * q[:, 3]
    tracker = EigenTracker(freq=1, power_iters=2, refresh="ritz")
    tracker.set_vector(previous)
    tracker.refresh(op)
    u = previous / previous.norm()
    basis = torch.linalg.qr(torch.stack([u, op.matrix @ u], dim=1)).Q
    theta, vectors = torch.linalg.eigh(basis.T @ op.matrix @ basis)
    stepped = op.matrix @ (basis @ vectors[:, -1])
    stepped = stepped / stepped.norm()
    stepped = stepped if float(torch.dot(stepped, u)) >= 0 else -stepped
    torch.testing.assert_close(tracker.vector, stepped)
    assert tracker.eigenvalue == pytest.approx(float(theta[-1]))
    assert (tracker.num_refreshes, tracker.num_hvps) == (1, 2)
    tracker.exact_eigenvalue = True
    tracker.refresh(op)
    assert tracker.eigenvalue == pytest.approx(float(tracker.vector @ op.matrix @ tracker.vector))
    assert tracker.num_hvps == 2 + 3


def test_ritz_refresh_stops_at_its_tolerance_or_spends_the_whole_budget_with_zero():
    """λ2/λ1 = 0.9 from a poor start: the default tolerance stops before the budget of 5 once the residual is
    ≤ 0.05·θ; tolerance 0 always spends all 5."""
    op, q = dense(1.0, 0.9, 0.5, 0.3, 0.1, 0.0, -0.2, seed=2)
    start = q[:, 0] + 0.3 * q[:, 1] + 0.2 * q[:, 2]
    spent = {}
    for tol in (None, 0.0):
        tracker = EigenTracker(freq=1, refresh_tol=tol)
        tracker.set_vector(start)
        result = tracker.refresh(op)
        spent[tol] = tracker.num_hvps
        if tol is None:
            assert result.converged and float(result.residuals[0]) <= 0.05 * float(result.eigenvalues[0])
    assert 2 <= spent[None] < spent[0.0] == 5


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_ritz_refresh_keeps_the_side_of_the_previous_vector(side):
    op, q = dense(4.0, 1.0, 0.5, 0.2)
    tracker = EigenTracker(freq=1, power_iters=3, refresh="ritz")
    tracker.set_vector(side * q[:, 0] + 0.05 * q[:, 1])
    tracker.refresh(op)
    assert float(torch.dot(tracker.vector, side * q[:, 0])) > 1 - 1e-9


def test_ritz_refresh_beats_power_at_equal_products_on_a_small_gap():
    """λ2/λ1 = 0.9: four power iterations barely move; four Ritz products nearly reach v1."""
    op, q = dense(1.0, 0.9, 0.5, 0.3, 0.1, 0.0, seed=2)
    start = q[:, 0] + q[:, 1] + q[:, 2]
    misalignment = {}
    for rule, tol in (("power", None), ("ritz", 0.0)):
        tracker = EigenTracker(freq=1, power_iters=4, refresh=rule, refresh_tol=tol)
        tracker.set_vector(start)
        tracker.refresh(op)
        misalignment[rule] = 1 - float(torch.dot(tracker.vector, q[:, 0]).abs())
    assert misalignment["ritz"] < 1e-3 < 0.1 < misalignment["power"]


def test_refresh_rule_is_checked_and_reachable_from_the_optimizers():
    with pytest.raises(ValueError, match="refresh must be one of 'ritz', 'power'"):
        EigenTracker(freq=1, refresh="lanczos")
    param = torch.nn.Parameter(torch.zeros(2))
    default = EigenSAM([param]).tracker
    assert (default.rule, default.power_iters, default.refresh_tol) == ("ritz", 5, 0.05)
    published = XSAM([param], refresh="power").tracker
    assert (published.rule, published.power_iters, published.refresh_tol) == ("power", 5, None)
    assert XSAM([param], refresh_tol=0.0).tracker.refresh_tol == 0.0
    with pytest.raises(ValueError, match="refresh_tol applies to refresh='ritz' only"):
        EigenSAM([param], refresh="power", refresh_tol=0.1)
    with pytest.raises(ValueError, match="refresh_tol must be"):
        XSAM([param], refresh_tol=-1.0)
    assert EigenSAM([param], refresh="power", power_iters=3).tracker.power_iters == 3
