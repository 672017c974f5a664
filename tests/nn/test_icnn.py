"""ICNN of CP-Flow (arXiv:2012.05942, eq. 7): convexity, positive-definite Hessians, shapes."""

from __future__ import annotations

import pytest
import torch

from otflows.linalg import hessian
from otflows.nn.icnn import (
    ICNN,
    ConvexPotential,
    ConvICNN,
    activation_derivatives,
    inverse_softplus,
)


def _icnn(d: int, seed: int = 0, context: int = 0, depth: int = 4,
          activation: str = "softplus") -> ICNN:
    return ICNN(d, 12, depth, context=context, dtype=torch.float64,
                generator=torch.Generator().manual_seed(seed), activation=activation)


def test_inverse_softplus_round_trips():
    for y in (1e-3, 0.5, 1.0, 7.0):
        assert torch.nn.functional.softplus(torch.tensor(inverse_softplus(y),
                                                         dtype=torch.float64)).item() \
            == pytest.approx(y, rel=1e-12)
    with pytest.raises(ValueError, match="y > 0"):
        inverse_softplus(0.0)


@pytest.mark.parametrize("d,activation", [(1, "softplus"), (3, "softplus"), (7, "softplus"),
                                          (3, "gaussian_softplus")])
def test_icnn_is_convex_along_random_segments(d: int, activation: str):
    f = _icnn(d, seed=d, activation=activation)
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(200, d, generator=gen, dtype=torch.float64) * 3, \
        torch.randn(200, d, generator=gen, dtype=torch.float64) * 3
    t = torch.rand(200, 1, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        lhs = f(t * a + (1 - t) * b)
        rhs = t[:, 0] * f(a) + (1 - t[:, 0]) * f(b)
    assert (lhs <= rhs + 1e-12).all()


@pytest.mark.parametrize("d", [2, 5, 12])
def test_strongly_convex_potential_has_hessian_at_least_alpha(d: int):
    pot = ConvexPotential(_icnn(d, seed=3), alpha=0.3)
    x = torch.randn(64, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    h = hessian(pot, x)
    assert torch.allclose(h, h.transpose(1, 2), atol=1e-12)
    eig = torch.linalg.eigvalsh(h)
    assert (eig >= 0.3 - 1e-10).all()  # ∇²F_α ⪰ αI ≻ 0
    assert pot.alpha.item() == pytest.approx(0.3)


def test_partially_convex_network_is_convex_in_x_for_each_context():
    f = _icnn(3, seed=5, context=4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    c = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    h = hessian(lambda u: f(u, c.repeat_interleave(3, 0)), x)
    assert (torch.linalg.eigvalsh(h) >= -1e-12).all()
    with pytest.raises(ValueError, match="conditional"):
        f(x)


def test_conv_icnn_shapes_and_convexity():
    f = ConvICNN((1, 6, 6), width=6, depth=3, dtype=torch.float64,
                 generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(20, 36, generator=gen, dtype=torch.float64), \
        torch.randn(20, 36, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        assert f(a).shape == (20,)
        assert (f(0.5 * (a + b)) <= 0.5 * (f(a) + f(b)) + 1e-12).all()


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="width >= 2"):
        ICNN(2, 1, 3)


@pytest.mark.parametrize("depth,context,activation", [
    (1, 0, "softplus"), (2, 0, "softplus"), (5, 0, "softplus"), (3, 4, "softplus"),
    (1, 0, "gaussian_softplus"), (3, 4, "gaussian_softplus")])
def test_closed_form_derivatives_match_autograd(depth: int, context: int, activation: str):
    pot = ConvexPotential(_icnn(5, seed=depth, context=context, depth=depth,
                                activation=activation), alpha=0.7)
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(9, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    c = torch.randn(9, context, generator=gen, dtype=torch.float64) if context else None
    v = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    f = pot(x, c)
    g = torch.autograd.grad(f.sum(), x, create_graph=True)[0]
    hv = torch.autograd.grad(g, x, v)[0]
    value, grad, hvp = pot.derivatives(x, c)
    assert torch.allclose(value, f, atol=1e-12)
    assert torch.allclose(grad, g, atol=1e-12)
    assert torch.allclose(hvp(v), hv, atol=1e-12)


def test_gaussian_softplus_is_the_expected_relu_of_a_noisy_input():
    """s(a) = E[max(0, a + ε)], ε ~ N(0, 1), with s′ = Φ and s″ = φ (autograd)."""
    a = torch.linspace(-4, 4, 17, dtype=torch.float64).requires_grad_(True)
    s, ds, d2s = activation_derivatives("gaussian_softplus", a)
    eps = torch.randn(400_000, 1, generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
    assert torch.allclose(s, (a + eps).clamp_min(0).mean(0), atol=5e-3)
    g = torch.autograd.grad(s.sum(), a, create_graph=True)[0]
    assert torch.allclose(g, ds, atol=1e-12)
    assert torch.allclose(torch.autograd.grad(g.sum(), a)[0], d2s, atol=1e-12)
    with pytest.raises(ValueError, match="activation"):
        ICNN(2, 4, 2, activation="relu")


@pytest.mark.parametrize("depth,context,activation,chunk", [
    (1, 0, "softplus", 1 << 22), (4, 0, "softplus", 1 << 22), (3, 4, "gaussian_softplus", 1 << 22),
    (4, 0, "gaussian_softplus", 300), (2, 3, "softplus", 1)])
def test_closed_form_hessian_matches_double_backward(depth: int, context: int, activation: str,
                                                      chunk: int, monkeypatch):
    """ICNN.hessian (Σ_u δ_u s″(a_u) ∇a_u ∇a_uᵀ, in row chunks) equals autograd's Hessian,
    and so do the parameter gradients of log det through it (create_graph)."""
    import otflows.nn.icnn as icnn_module
    from otflows.linalg import exact_log_det

    monkeypatch.setattr(icnn_module, "HESSIAN_CHUNK", chunk)  # 300: several rows per chunk
    pot = ConvexPotential(_icnn(5, seed=depth, context=context, depth=depth,
                                activation=activation), alpha=0.4)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(11, 5, generator=gen, dtype=torch.float64) * 2
    c = torch.randn(11, context, generator=gen, dtype=torch.float64) if context else None
    xr = x.clone().requires_grad_(True)
    g = torch.autograd.grad(pot(xr, c).sum(), xr, create_graph=True)[0]
    rows = torch.stack([torch.autograd.grad(g[:, j].sum(), xr, create_graph=True)[0]
                        for j in range(5)], 1)
    assert torch.allclose(hessian(pot, x, context=c), rows, atol=1e-12)
    params = list(pot.parameters())
    closed = torch.autograd.grad(exact_log_det(pot, x, True, c).sum(), params)
    ref = torch.autograd.grad(torch.linalg.slogdet(rows)[1].sum(), params)
    for a, b in zip(closed, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_exact_log_det_in_row_chunks_equals_one_batch(monkeypatch):
    """linalg.exact_log_det splits the rows into chunks (memory bounded in n): same values."""
    import otflows.linalg as linalg

    pot = ConvexPotential(_icnn(4, seed=1, depth=3), alpha=0.5)
    x = torch.randn(23, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    whole = linalg.exact_log_det(pot, x)
    monkeypatch.setattr(linalg, "HESSIAN_CHUNK_ELEMENTS", 5 * 16)  # 5 rows per chunk
    assert torch.allclose(linalg.exact_log_det(pot, x), whole, atol=1e-13)
