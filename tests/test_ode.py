"""Fixed-step RK4 and the dopri5 wrapper against exact solutions."""

from __future__ import annotations

import math

import pytest
import torch

from otflows.ode import dopri5, rk4

F64 = torch.float64


def _linear_problem():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64) * 0.8
    y0 = torch.randn(3, 4, generator=g, dtype=torch.float64)  # 3 independent states [n, k]
    return A, y0


def test_rk4_linear_ode_matches_matrix_exponential_with_order_four():
    A, y0 = _linear_problem()
    exact = y0 @ torch.linalg.matrix_exp(A).T  # y' = A y  ->  y(1) = e^A y0
    errors = [(rk4(lambda t, y: y @ A.T, y0, 0.0, 1.0, n) - exact).abs().max().item()
              for n in (8, 16, 32)]
    assert errors[-1] < 1e-6
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(3.7 < p < 4.3 for p in orders), orders


def test_rk4_backwards_in_time_inverts_forward():
    A, y0 = _linear_problem()
    f = lambda t, y: y @ A.T  # noqa: E731
    y1 = rk4(f, y0, 0.0, 1.0, 64)
    assert torch.allclose(rk4(f, y1, 1.0, 0.0, 64), y0, atol=1e-9)


def test_rk4_is_exact_for_cubic_time_dependence():
    # y' = 4 t^3 + 1 has y(t1) - y(t0) = t1^4 - t0^4 + (t1 - t0); RK4 (Simpson) is exact for
    # integrands of degree <= 3 in t
    f = lambda t, y: torch.full_like(y, 4 * t**3 + 1)  # noqa: E731
    y = rk4(f, torch.zeros(2, 1, dtype=F64), 0.25, 1.5, 3)
    assert torch.allclose(y, torch.full((2, 1), 1.5**4 - 0.25**4 + 1.25, dtype=F64), atol=1e-13)


def test_rk4_rejects_non_positive_steps():
    with pytest.raises(ValueError, match="n_steps"):
        rk4(lambda t, y: y, torch.zeros(1), 0.0, 1.0, 0)


def test_rk4_is_differentiable():
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)
    y = rk4(lambda t, y: -a * y, torch.ones(1, dtype=F64), 0.0, 1.0, 20)
    (g,) = torch.autograd.grad(y.sum(), a)
    assert abs(g.item() - (-math.exp(-0.7))) < 1e-7  # d/da e^{-a} = -e^{-a}


def test_dopri5_matches_exact_exponential():
    A, y0 = _linear_problem()
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    ys = dopri5(lambda t, y: y @ A.T, y0, t, rtol=1e-9, atol=1e-9)
    assert ys.shape == (3, *y0.shape)
    for k, tk in enumerate(t.tolist()):
        assert torch.allclose(ys[k], y0 @ torch.linalg.matrix_exp(tk * A).T, atol=1e-7)


def test_dopri5_rejects_bad_times():
    with pytest.raises(ValueError, match="1-D"):
        dopri5(lambda t, y: y, torch.zeros(2), torch.tensor([0.0]))
