"""The OT-Flow potential: closed-form gradient and exact Laplacian against autograd."""

from __future__ import annotations

import math

import pytest
import torch

import otflows.nn.potentials as potentials
from otflows.nn.potentials import OTFlowPotential, log_cosh2

F64 = torch.float64


def _potential(d: int, n_layers: int, width: int = 12, seed: int = 0) -> OTFlowPotential:
    g = torch.Generator().manual_seed(seed)
    phi = OTFlowPotential(d, width, n_layers, dtype=F64, generator=g)
    with torch.no_grad():  # move w, b, c off their published init so every term is exercised
        for p in (phi.w, phi.b, phi.c):
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    return phi


def _autograd_derivatives(phi: OTFlowPotential, s: torch.Tensor):
    """∇_sΦ and Δ_xΦ by autograd, the latter as the x-diagonal of the exact Hessian."""
    if not s.requires_grad:
        s = s.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(phi(s).sum(), s, create_graph=True)
    d = phi.d
    lap = sum(torch.autograd.grad(grad[:, i].sum(), s, create_graph=True)[0][:, i]
              for i in range(d))
    return grad, lap


@pytest.mark.parametrize("n_layers", [2, 3])
@pytest.mark.parametrize("d", [2, 5, 43])
def test_closed_form_gradient_and_laplacian_match_autograd(d, n_layers):
    phi = _potential(d, n_layers)
    s = torch.randn(9, d + 1, dtype=F64, generator=torch.Generator().manual_seed(1))
    der = phi.grad_and_laplacian(s)
    grad, lap = _autograd_derivatives(phi, s)
    assert der.grad.shape == (9, d + 1) and der.laplacian.shape == (9,)
    torch.testing.assert_close(der.grad, grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(der.laplacian, lap, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [2, 43])
def test_laplacian_is_trace_of_full_hessian(d):
    phi = _potential(d, 2)
    s = torch.randn(3, d + 1, dtype=F64)
    lap = phi.grad_and_laplacian(s).laplacian
    for i in range(3):
        H = torch.autograd.functional.hessian(lambda v: phi(v.unsqueeze(0)).sum(), s[i])
        assert abs(lap[i].item() - torch.diagonal(H)[:d].sum().item()) < 1e-11


@pytest.mark.parametrize("uniform", [True, False], ids=["uniform-weights", "random-weights"])
@pytest.mark.parametrize("n_layers", [2, 3])
@pytest.mark.parametrize("d", [2, 5, 43])
def test_derivatives_backpropagate_like_autograd(d, n_layers, uniform):
    # training backpropagates through ∇Φ and ΔΦ to the weights and to s; the two-layer path
    # has a hand-written backward (and a shortcut for equal per-sample weights on ΔΦ)
    phi = _potential(d, n_layers)
    g = torch.Generator().manual_seed(2)
    s = torch.randn(7, d + 1, dtype=F64, generator=g, requires_grad=True)
    r_grad = torch.randn(7, d + 1, dtype=F64, generator=g)
    r_lap = torch.full((7,), 0.3, dtype=F64) if uniform else torch.randn(7, dtype=F64,
                                                                         generator=g)
    params = [p for name, p in phi.named_parameters() if name != "c"]
    der = phi.grad_and_laplacian(s)
    ours = torch.autograd.grad((der.grad * r_grad).sum() + (der.laplacian * r_lap).sum(),
                               [s, *params])
    grad, lap = _autograd_derivatives(phi, s)
    ref = torch.autograd.grad((grad * r_grad).sum() + (lap * r_lap).sum(), [s, *params])
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


def test_laplacian_alone_and_gradient_alone_backpropagate():
    phi = _potential(3, 2)
    s = torch.randn(5, 4, dtype=F64, requires_grad=True)
    grad, lap = _autograd_derivatives(phi, s)
    der = phi.grad_and_laplacian(s)
    for ours, ref in ((der.laplacian.sum(), lap.sum()), (der.grad.sum(), grad.sum())):
        a = torch.autograd.grad(ours, [s, phi.K0, phi.A], retain_graph=True)
        b = torch.autograd.grad(ref, [s, phi.K0, phi.A], retain_graph=True)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-11)


def test_chunked_trace_is_independent_of_chunk_size(monkeypatch):
    phi = _potential(5, 2, width=8)
    s = torch.randn(37, 6, dtype=F64, requires_grad=True)
    r = torch.randn(37, dtype=F64)
    whole = phi.grad_and_laplacian(s).laplacian
    g_whole = torch.autograd.grad((whole * r).sum(), [s, phi.K[0]])
    monkeypatch.setattr(potentials, "_CHUNK_BYTES", 8 * 5 * 6 * 8)  # float64 chunks of 6, last of 1
    chunked = phi.grad_and_laplacian(s).laplacian
    g_chunked = torch.autograd.grad((chunked * r).sum(), [s, phi.K[0]])
    torch.testing.assert_close(chunked, whole, rtol=1e-13, atol=1e-13)
    for a, b in zip(g_chunked, g_whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_no_grad_values_equal_grad_mode_values():
    phi = _potential(4, 2)
    s = torch.randn(6, 5, dtype=F64)
    with torch.no_grad():
        a = phi.grad_and_laplacian(s)
    b = phi.grad_and_laplacian(s.requires_grad_(True))
    assert torch.equal(a.grad, b.grad.detach()) and torch.equal(a.laplacian,
                                                                b.laplacian.detach())


def test_float32_matches_float64():
    phi = _potential(6, 2)
    phi32 = OTFlowPotential(6, 12, 2, dtype=torch.float32)
    phi32.load_state_dict({k: v.float() for k, v in phi.state_dict().items()})
    s = torch.randn(10, 7, dtype=F64)
    a, b = phi.grad_and_laplacian(s), phi32.grad_and_laplacian(s.float())
    assert b.grad.dtype == torch.float32
    torch.testing.assert_close(b.grad.double(), a.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.laplacian.double(), a.laplacian, rtol=1e-4, atol=1e-4)


def test_published_initialisation_and_parameter_count():
    phi = OTFlowPotential(2, 3, 2, rank=10, dtype=F64)
    assert phi.A.shape == (3, 3)  # rank = min(10, d + 1)
    assert torch.all(phi.w == 1) and torch.all(phi.b == 0) and torch.all(phi.c == 0)
    assert sum(p.numel() for p in phi.parameters()) == 40  # JKO-Flow Table 2, width 3
    deep = OTFlowPotential(2, 4, 4, dtype=F64)
    assert torch.equal(deep.K[1], deep.K[0]) and torch.equal(deep.K[2], deep.K[0])
    same = [OTFlowPotential(3, 5, generator=torch.Generator().manual_seed(7)) for _ in "ab"]
    for p, q in zip(same[0].parameters(), same[1].parameters(), strict=True):
        assert torch.equal(p, q)


def test_activation_is_stable_and_correct():
    x = torch.tensor([-1000.0, -30.0, -1.0, 0.0, 0.5, 30.0, 1000.0], dtype=F64)
    y = log_cosh2(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[2:5], torch.log(2 * torch.cosh(x[2:5])))
    torch.testing.assert_close(y[[0, 6]], torch.tensor([1000.0, 1000.0], dtype=F64))
    th, sig = potentials._tanh_and_log_cosh2(x.float())
    assert torch.isfinite(sig).all() and torch.isfinite(th).all()
    torch.testing.assert_close(th, torch.tanh(x.float()), rtol=0, atol=1e-6)
    torch.testing.assert_close(sig, log_cosh2(x.float()), rtol=1e-6, atol=1e-6)
    assert abs(log_cosh2(torch.tensor(0.0)).item() - math.log(2.0)) < 1e-7


def test_rejects_bad_shapes_and_sizes():
    phi = OTFlowPotential(3, 4)
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        phi.grad_and_laplacian(torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="n_layers"):
        OTFlowPotential(3, 4, n_layers=1)
