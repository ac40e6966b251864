"""Top-k eigenpairs against torch.linalg.eigh of exact Hessians and of explicit matrices."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.curvature import DenseOperator, HessianOperator, power_iterate, ritz_refresh, top_eigenpairs


def _exact_top(hessian: torch.Tensor, k: int, *, by_magnitude: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(hessian)
    order = torch.argsort(values.abs() if by_magnitude else values, descending=True)[:k]
    return values[order], vectors[:, order].T


@pytest.mark.parametrize("k", [1, 5])
def test_lanczos_matches_exact_eigenpairs(problem, k):
    op = HessianOperator(problem.model, problem.loss_fn, (problem.inputs, problem.targets))
    result = top_eigenpairs(op, k=k)
    values, vectors = _exact_top(problem.hessian, k)
    assert result.converged
    torch.testing.assert_close(result.eigenvalues, values, rtol=1e-4, atol=0)
    cosines = (result.eigenvectors * vectors).sum(dim=1).abs()
    assert bool((cosines > 0.999).all()), cosines
    torch.testing.assert_close(result.eigenvectors.norm(dim=1), torch.ones(k, dtype=torch.float64))
    explicit = (problem.hessian @ result.eigenvectors.T).T - result.eigenvalues[:, None] * result.eigenvectors
    torch.testing.assert_close(result.residuals, explicit.norm(dim=1), rtol=1e-3, atol=1e-9)
    assert result.num_hvps == op.num_hvps


def test_power_iteration_finds_the_largest_magnitude_eigenvalues(mlp_problem):
    op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
    result = top_eigenpairs(op, k=3, method="power", tol=1e-6, max_iter=5000)
    values, vectors = _exact_top(mlp_problem.hessian, 3, by_magnitude=True)
    assert result.converged and result.method == "power"
    torch.testing.assert_close(result.eigenvalues, values, rtol=1e-6, atol=0)
    assert bool(((result.eigenvectors * vectors).sum(dim=1).abs() > 0.999).all())


def test_lanczos_uses_far_fewer_products_than_power_iteration(mlp_problem):
    op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
    lanczos = top_eigenpairs(op, k=3, tol=1e-6)
    power = top_eigenpairs(op, k=3, method="power", tol=1e-6, max_iter=5000)
    assert lanczos.num_hvps * 3 < power.num_hvps


def test_warm_start_from_the_eigenvector_converges_at_once(cnn_problem):
    op = HessianOperator(cnn_problem.model, F.cross_entropy, (cnn_problem.inputs, cnn_problem.targets))
    cold = top_eigenpairs(op, k=1)
    warm = top_eigenpairs(op, k=1, init=cold.eigenvectors[0])
    assert warm.num_hvps <= 3 < cold.num_hvps
    torch.testing.assert_close(warm.eigenvalues, cold.eigenvalues, rtol=1e-6, atol=0)
    perturbed = cold.eigenvectors[0] + 0.05 * torch.randn(op.num_params, dtype=torch.float64)
    assert top_eigenpairs(op, k=1, init=perturbed).num_hvps < cold.num_hvps


def test_thick_restart_on_a_clustered_spectrum():
    """n = 300 with a slowly decaying top: Lanczos must restart its 20-vector basis many times."""
    generator = torch.Generator().manual_seed(3)
    rotation = torch.linalg.qr(torch.randn(300, 300, generator=generator, dtype=torch.float64)).Q
    spectrum = torch.cat([torch.tensor([10.0, 9.9, 9.8, 9.75, 9.7]), torch.linspace(9.5, -3.0, 295)]).double()
    op = DenseOperator(rotation @ torch.diag(spectrum) @ rotation.T)
    result = top_eigenpairs(op, k=5, tol=1e-8, max_iter=5000)
    assert result.converged and result.num_hvps > 20
    torch.testing.assert_close(result.eigenvalues, spectrum[:5], rtol=1e-10, atol=0)
    cosines = (result.eigenvectors @ rotation[:, :5]).diagonal().abs()
    assert bool((cosines > 0.9999).all())


def test_start_vector_inside_an_invariant_subspace():
    """Starting at e₁ of a diagonal matrix breaks Lanczos down at once; it must carry on and find the top 3."""
    op = DenseOperator(torch.diag(torch.tensor([1.0, 5.0, 3.0, 4.0, 2.0], dtype=torch.float64)))
    result = top_eigenpairs(op, k=3, init=torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(result.eigenvalues, torch.tensor([5.0, 4.0, 3.0], dtype=torch.float64))


def test_k_equal_to_n_returns_the_whole_spectrum():
    matrix = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    result = top_eigenpairs(DenseOperator(matrix), k=2)
    torch.testing.assert_close(result.eigenvalues, torch.linalg.eigvalsh(matrix).flip(0))


def test_power_iterate_takes_exactly_the_given_steps(mlp_problem):
    op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
    start = torch.randn(op.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    result = power_iterate(op, start, steps=5)
    expected = start / start.norm()
    for _ in range(5):
        expected = mlp_problem.hessian @ expected
        expected = expected / expected.norm()
    assert result.num_hvps == 5 == op.num_hvps
    torch.testing.assert_close(result.eigenvectors[0], expected)


def test_not_converging_warns_and_says_so(mlp_problem):
    op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
    with pytest.warns(RuntimeWarning, match="max_iter=3"):
        result = top_eigenpairs(op, k=2, max_iter=3, tol=1e-12)
    assert not result.converged and result.num_hvps == 3


class TestBadInput:
    def test_k_larger_than_the_parameter_count(self, mlp_problem):
        op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
        with pytest.raises(ValueError, match=r"k=200 exceeds the number of parameters \(114\)"):
            top_eigenpairs(op, k=200)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"k": 0}, r"k must be an integer in \[1, 2\]"),
            ({"tol": -1.0}, "tol must be in"),
            ({"max_iter": 0}, "max_iter must be an integer >= 1"),
            ({"method": "qr"}, "method must be one of 'lanczos', 'power'"),
            ({"init": torch.ones(3)}, r"init must have shape \(2,\)"),
        ],
    )
    def test_bad_arguments(self, kwargs, message):
        op = DenseOperator(torch.eye(2, dtype=torch.float64))
        with pytest.raises(ValueError, match=message):
            top_eigenpairs(op, **kwargs)


def test_a_warm_start_keeps_its_sign():
    """QR-orthonormalising a start vector may flip it; the solvers must start from +init, not −init."""
    op = DenseOperator(torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)))
    start = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    result = power_iterate(op, start, steps=1)
    expected = op.matrix @ start
    torch.testing.assert_close(result.eigenvectors[0], expected / expected.norm())


def _symmetric(spectrum: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(spectrum)
    generator = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64)).Q
    return q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T, q


@pytest.mark.parametrize("products", [1, 2, 3, 4])
def test_ritz_refresh_is_rayleigh_ritz_on_the_krylov_space_plus_one_power_step(products):
    """By hand: Q = orth[u, Hu, …, H^(m-1)u], top eigenpair (θ, s) of QᵀHQ, y = Qs, v = Hy/‖Hy‖."""
    matrix, _ = _symmetric([6.0, 5.0, 3.0, 1.0, 0.5, -2.0, -0.1])
    start = torch.tensor([1.0, 0.3, -0.2, 0.5, 0.1, 0.0, 0.7], dtype=torch.float64)
    op = DenseOperator(matrix)
    result = ritz_refresh(op, start, products)
    krylov = [start / start.norm()]
    for _ in range(products - 1):
        krylov.append(matrix @ krylov[-1])
    basis = torch.linalg.qr(torch.stack(krylov, dim=1)).Q
    theta, vectors = torch.linalg.eigh(basis.T @ matrix @ basis)
    ritz = basis @ vectors[:, -1]
    stepped = matrix @ ritz
    stepped = stepped / stepped.norm()
    assert result.num_hvps == products == op.num_hvps and result.method == "ritz"
    torch.testing.assert_close(result.eigenvalues[0], theta[-1])
    sign = torch.sign(torch.dot(result.eigenvectors[0], stepped))
    torch.testing.assert_close(sign * result.eigenvectors[0], stepped)
    assert float(result.residuals[0]) == pytest.approx(float((matrix @ ritz - theta[-1] * ritz).norm()), rel=1e-8)


def test_ritz_refresh_with_a_full_krylov_space_is_exact():
    matrix, q = _symmetric([4.0, 3.0, 1.0, -1.0])
    result = ritz_refresh(DenseOperator(matrix), None, 4, keep=2)
    torch.testing.assert_close(result.eigenvalues, torch.tensor([4.0, 3.0], dtype=torch.float64))
    assert float(torch.dot(result.eigenvectors[0], q[:, 0]).abs()) == pytest.approx(1.0, abs=1e-12)
    assert float(torch.dot(result.eigenvectors[1], q[:, 1]).abs()) == pytest.approx(1.0, abs=1e-12)


def test_ritz_refresh_from_two_rows_starts_from_their_span():
    """Two start rows spanning the top two eigenvectors: two products recover both exactly."""
    matrix, q = _symmetric([4.0, 3.0, 1.0, -1.0, 0.5])
    rows = torch.stack([q[:, 0] + q[:, 1], q[:, 0] - 0.5 * q[:, 1]])
    result = ritz_refresh(DenseOperator(matrix), rows, 2, keep=2)
    torch.testing.assert_close(result.eigenvalues, torch.tensor([4.0, 3.0], dtype=torch.float64))
    assert float(torch.dot(result.eigenvectors[0], q[:, 0]).abs()) == pytest.approx(1.0, abs=1e-12)


def test_ritz_refresh_survives_an_invariant_start():
    """A start inside an invariant subspace makes later Krylov vectors collapse; they are dropped, not NaN."""
    op = DenseOperator(torch.diag(torch.tensor([1.0, 5.0, 3.0], dtype=torch.float64)))
    result = ritz_refresh(op, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), 3)
    assert float(result.eigenvalues[0]) == pytest.approx(5.0)
    torch.testing.assert_close(result.eigenvectors[0].abs(), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("tol", [0.5, 0.1, 1e-2, 1e-4])
def test_ritz_refresh_with_tol_stops_at_the_first_budget_whose_residual_meets_it(tol):
    """With ``tol``: the result of the smallest budget m ≥ 2 whose top Ritz pair has ‖Hy − θy‖ ≤ tol·|θ| (or of the
    whole budget), identical to a fixed-budget call with m products; the residual it tests equals the explicit one."""
    matrix, _ = _symmetric([6.0, 5.0, 3.0, 1.0, 0.5, -2.0, -0.1])
    start = torch.tensor([1.0, 0.3, -0.2, 0.5, 0.1, 0.0, 0.7], dtype=torch.float64)
    fixed = {m: ritz_refresh(DenseOperator(matrix), start, m) for m in range(1, 7)}
    relative = {m: float(result.residuals[0] / result.eigenvalues[0].abs()) for m, result in fixed.items()}
    expected = next((m for m in range(2, 7) if relative[m] <= tol), 6)
    op = DenseOperator(matrix)
    result = ritz_refresh(op, start, 6, tol=tol, min_products=2)
    assert result.num_hvps == expected == op.num_hvps
    assert result.converged is (relative[expected] <= tol)
    torch.testing.assert_close(result.eigenvectors, fixed[expected].eigenvectors)
    torch.testing.assert_close(result.eigenvalues, fixed[expected].eigenvalues)


class _RotatedDiagonal:
    """A float32 operator of size n: Householder-rotated diagonal H with λ1 = 10 (products in float64, rounded)."""

    def __init__(self, n: int) -> None:
        generator = torch.Generator().manual_seed(0)
        spectrum = torch.rand(n, generator=generator, dtype=torch.float64) * 5 - 1
        self.spectrum = torch.cat([torch.tensor([10.0, 9.0, 8.0], dtype=torch.float64), spectrum[3:]])
        normals = torch.randn(3, n, generator=generator, dtype=torch.float64)
        self.normals = normals / normals.norm(dim=1, keepdim=True)
        self.num_params, self.dtype, self.device, self.num_hvps = n, torch.float32, torch.device("cpu"), 0

    def rotate(self, rows: torch.Tensor, order: range) -> torch.Tensor:
        for index in order:
            rows = rows - 2 * (rows @ self.normals[index])[:, None] * self.normals[index]
        return rows

    def batched_matvec(self, rows: torch.Tensor) -> torch.Tensor:
        self.num_hvps += rows.shape[0]
        return self.rotate(self.rotate(rows.double(), range(3)) * self.spectrum, range(2, -1, -1)).float()


@pytest.mark.parametrize("tol", [1e-3, 1e-5])
def test_ritz_refresh_in_float32_stops_only_when_the_explicit_residual_meets_tol(tol):
    """The stopping residual is taken from the projected matrices, accumulated in float64: in float32 they would
    cancel to rounding noise over 20,000 parameters and stop at 1e-5 with a true residual of about 5e-4."""
    op = _RotatedDiagonal(20_000)
    top = torch.zeros(1, op.num_params, dtype=torch.float64)
    top[0, 0] = 1.0
    noise = torch.randn(op.num_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    start = op.rotate(top, range(2, -1, -1))[0] + 1e-3 * noise
    result = ritz_refresh(op, start.float(), 30, tol=tol)
    assert result.converged and result.num_hvps < 30
    assert float(result.residuals[0] / result.eigenvalues[0].abs()) <= 1.5 * tol


def test_ritz_refresh_with_tol_takes_min_products_even_from_an_eigenvector():
    matrix, q = _symmetric([4.0, 3.0, 1.0, -1.0])
    op = DenseOperator(matrix)
    result = ritz_refresh(op, q[:, 0], 5, tol=0.1, min_products=3)
    assert result.num_hvps == 3 and result.converged
    assert float(torch.dot(result.eigenvectors[0], q[:, 0]).abs()) == pytest.approx(1.0, abs=1e-12)
    assert ritz_refresh(op, None, 2, tol=0.0).converged is False  # a random start is no eigenvector


def test_ritz_refresh_bad_arguments():
    op = DenseOperator(torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="products must be an integer >= 1"):
        ritz_refresh(op, None, 0)
    with pytest.raises(ValueError, match="tol must be"):
        ritz_refresh(op, None, 2, tol=-0.1)
    with pytest.raises(ValueError, match="min_products must be an integer >= 1"):
        ritz_refresh(op, None, 2, tol=0.1, min_products=0)
    with pytest.raises(ValueError, match=r"init must have shape \(3,\)"):
        ritz_refresh(op, torch.ones(4), 2)
