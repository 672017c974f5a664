"""CP-Flow numerics (arXiv:2012.05942): closed-form checks of CG, SLQ and the exact log det,
Algorithm 1 (L-BFGS inversion), Algorithm 2 (the CG surrogate of ∇ log det) and the change
of variables of a two-block flow."""

from __future__ import annotations

import math

import pytest
import torch

from otflows.linalg import conjugate_gradient, exact_log_det, hessian, rademacher, slq_log_det
from otflows.methods.cpflow.core import CPFlow, invert_potential, surrogate_log_det
from otflows.nn.icnn import ICNN, ConvexPotential

F64 = torch.float64


def potential(d: int, seed: int = 0, depth: int = 3, width: int = 16,
              alpha: float = 0.5, activation: str = "softplus") -> ConvexPotential:
    icnn = ICNN(d, width, depth, dtype=F64, generator=torch.Generator().manual_seed(seed),
                activation=activation)
    pot = ConvexPotential(icnn, alpha=alpha)
    with torch.no_grad():  # a strongly curved ICNN part, so H is far from αI
        pot.b.fill_(3.0)
    return pot


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ------------------------------------------------------------------------- linear algebra
def test_cg_matches_linalg_solve_on_random_spd_batches():
    a = randn(16, 7, 7, seed=1)
    h = a @ a.transpose(1, 2) + 0.1 * torch.eye(7, dtype=F64)
    b = randn(16, 7, seed=2)
    out = conjugate_gradient(lambda v: torch.einsum("nij,nj->ni", h, v), b, 1e-11, 100)
    ref = torch.linalg.solve(h, b)
    assert torch.allclose(out.x, ref, atol=1e-8, rtol=1e-8)
    assert out.residual.max() < 1e-11 and out.iterations <= 60


def test_cg_stops_at_the_iteration_cap_and_tolerance():
    h = torch.diag_embed(torch.linspace(1, 100, 30, dtype=F64)).expand(4, 30, 30)
    b = torch.ones(4, 30, dtype=F64)
    capped = conjugate_gradient(lambda v: torch.einsum("nij,nj->ni", h, v), b, 1e-14, 3)
    assert capped.iterations == 3 and capped.residual.max() > 1e-3
    loose = conjugate_gradient(lambda v: torch.einsum("nij,nj->ni", h, v), b, 1e-1, 100)
    assert loose.residual.max() < 1e-1 and loose.iterations < 30


@pytest.mark.parametrize("d", [5, 10, 20])
def test_slq_with_d_steps_equals_the_quadratic_form_of_log_h(d: int):
    """With m = d Lanczos steps Gauss quadrature is exact: each probe gives vᵀ log(H) v."""
    pot = potential(d, seed=d)
    x = randn(12, d, seed=d) * 1.5
    h = hessian(pot, x)
    evals, evecs = torch.linalg.eigh(h)
    log_h = evecs @ torch.diag_embed(evals.log()) @ evecs.transpose(1, 2)
    v = rademacher((12, d), torch.Generator().manual_seed(7), F64)
    exact_form = torch.einsum("ni,nij,nj->n", v, log_h, v)
    est = slq_log_det(lambda u: pot.derivatives(x)[2](u), 12, d, d, 1,
                      torch.Generator().manual_seed(7), F64)
    assert torch.allclose(est, exact_form, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("d,steps", [(5, 5), (12, 8), (20, 10)])
def test_slq_estimates_the_exact_log_det_within_its_monte_carlo_error(d: int, steps: int):
    """Tolerance: 4 standard errors of the probe average (plus 1e-3 for truncation)."""
    pot = potential(d, seed=10 + d)
    x = randn(8, d, seed=d) * 1.5
    exact = exact_log_det(pot, x)
    hvp = pot.derivatives(x.repeat(300, 1))[2]  # 300 probes per point, one batch
    probes = slq_log_det(hvp, 2400, d, steps, 1, torch.Generator().manual_seed(3),
                         F64).reshape(300, 8)
    se = probes.std(0) / math.sqrt(probes.shape[0])
    assert ((probes.mean(0) - exact).abs() <= 4 * se + 1e-3).all()


def test_exact_log_det_matches_slogdet_of_the_autograd_hessian():
    pot = potential(4, seed=2)
    x = randn(10, 4, seed=5)
    xr = x.clone().requires_grad_(True)
    g = torch.autograd.grad(pot(xr).sum(), xr, create_graph=True)[0]
    rows = torch.stack([torch.autograd.grad(g[:, j].sum(), xr, retain_graph=True)[0]
                        for j in range(4)], 1)
    assert torch.allclose(hessian(pot, x), rows, atol=1e-12)
    assert torch.allclose(exact_log_det(pot, x), torch.linalg.slogdet(rows)[1], atol=1e-10)
    assert (torch.linalg.eigvalsh(rows) > 0).all()  # positive definite


# ------------------------------------------------------------------------- Alg. 1 and 2
def test_inversion_error_is_below_1e_5_on_random_inputs():
    pot = potential(5, seed=4, depth=4, width=24)
    y = randn(256, 5, seed=9) * 3
    out = invert_potential(pot, y, tol=1e-7, max_iter=500)
    g = pot.derivatives(out.x)[1]
    assert (g - y).abs().max() <= 1e-5
    assert out.error.max() <= 1e-5 and torch.allclose(out.error, (g - y).abs().amax(1))


@pytest.mark.parametrize("d,activation", [(2, "softplus"), (3, "softplus"),
                                          (2, "gaussian_softplus")])
def test_surrogate_gradient_matches_the_exact_log_det_gradient(d: int, activation: str):
    """Alg. 2: E_v[∂/∂θ vᵀ H (stop-grad H⁻¹v)] = ∂ log det H/∂θ (eq. 3), averaged over
    4000 probes at one point (each row of a replicated batch carries its own probe)."""
    pot = potential(d, seed=6, depth=3, width=12, activation=activation)
    x0 = randn(1, d, seed=2)
    params = list(pot.parameters())
    exact = torch.autograd.grad(exact_log_det(pot, x0, create_graph=True).sum(), params)
    xs = x0.repeat(4000, 1)
    out = surrogate_log_det(pot, xs, torch.Generator().manual_seed(0), 1e-12, 10)
    est = torch.autograd.grad(out.surrogate.mean(), params)
    flat_e, flat_s = torch.cat([g.flatten() for g in exact]), torch.cat([g.flatten()
                                                                        for g in est])
    assert out.cg_residual < 1e-10
    assert torch.linalg.norm(flat_s - flat_e) <= 0.1 * torch.linalg.norm(flat_e)
    assert torch.nn.functional.cosine_similarity(flat_s, flat_e, dim=0) > 0.99


@pytest.mark.parametrize("actnorm", [False, True])
def test_two_block_flow_density_integrates_to_one(actnorm: bool):
    """Change of variables with exact log dets (and the ActNorm log dets): ∫ p = 1 on a
    fine 2-D grid; SLQ (2000 probes) agrees; inversion round-trips."""
    flow = CPFlow([potential(2, seed=1, alpha=1.0), potential(2, seed=2, alpha=1.0)],
                  actnorm=actnorm)
    if actnorm:
        with torch.no_grad():
            flow.norms[0].shift.copy_(torch.tensor([0.3, -0.2], dtype=F64))
            flow.norms[0].log_scale.copy_(torch.tensor([0.4, -0.3], dtype=F64))
            flow.norms[1].log_scale.copy_(torch.tensor([-0.2, 0.1], dtype=F64))
    g = torch.linspace(-6, 6, 241, dtype=F64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    p = flow.log_prob(pts, "exact").exp()
    assert float(p.sum() * (g[1] - g[0]) ** 2) == pytest.approx(1.0, abs=2e-3)
    slq = flow.log_prob(pts[:20], "slq", 2, 2000, torch.Generator().manual_seed(0))
    assert torch.allclose(slq, p[:20].log(), atol=0.05)  # Monte Carlo over the probes
    z = flow(pts[:50])
    back = flow.inverse(z, 1e-10, 500)
    assert (back.x - pts[:50]).abs().max() < 1e-7


def test_exact_log_det_rejects_an_indefinite_hessian_with_positive_determinant():
    """∇²F = diag(1, −1, −1) has det +1: a sign test on det passes it, but log det of a
    non-positive-definite Hessian is not a change of volume of a convex potential's map.
    The Cholesky factorisation refuses it with a clear message."""

    def saddle(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x[:, 0] ** 2 - x[:, 1] ** 2 - x[:, 2] ** 2)

    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="not positive definite"):
        exact_log_det(saddle, x)
