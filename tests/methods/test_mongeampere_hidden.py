"""Monge-Ampère flow integrated in hidden coordinates (x = x₀ + W₁ᵀu): the same RK4 as in x,
values and weight gradients, recorded paths and the kinetic term."""

from __future__ import annotations

import pytest
import torch

from otflows.methods.mongeampere import SoftplusPotential, integrate, negative_log_likelihood

F64 = torch.float64


def _potential(d: int, width: int) -> SoftplusPotential:
    phi = SoftplusPotential(d, width, F64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        phi.out.mul_(4.0)  # a field strong enough to move the points visibly
    return phi


@pytest.mark.parametrize("reverse", [False, True])
def test_hidden_coordinates_give_the_same_rk4_as_x(reverse):
    phi = _potential(30, 8)
    x = torch.randn(6, 30, dtype=F64, generator=torch.Generator().manual_seed(1))
    ref = integrate(phi, x, 0.1, 7, reverse=reverse, kinetic=True, record_every=3,
                    coordinates="x")
    got = integrate(phi, x, 0.1, 7, reverse=reverse, kinetic=True, record_every=3,
                    coordinates="hidden")
    assert (ref.x - x).abs().max() > 1e-2  # the flow moved the points
    torch.testing.assert_close(got.x, ref.x, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.delta_logp, ref.delta_logp, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.kinetic, ref.kinetic, rtol=0, atol=1e-12)
    assert len(got.path) == len(ref.path) == 4  # start, steps 3 and 6, the end (step 7)
    for a, b in zip(got.path, ref.path, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_hidden_coordinates_give_the_same_weight_gradients():
    x = torch.randn(5, 20, dtype=F64, generator=torch.Generator().manual_seed(2))
    grads = {}
    for coords in ("x", "hidden"):
        phi = _potential(20, 6)
        nll, _ = negative_log_likelihood(phi, x, 0.2, 5) if coords == "hidden" else (
            _nll_in_x(phi, x), None)
        nll.mean().backward()
        grads[coords] = [p.grad.clone() for p in phi.parameters()]
    for a, b in zip(grads["hidden"], grads["x"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _nll_in_x(phi: SoftplusPotential, x: torch.Tensor) -> torch.Tensor:
    from otflows.distributions import standard_normal_log_prob

    out = integrate(phi, x, 0.2, 5, reverse=True, coordinates="x")
    return out.delta_logp - standard_normal_log_prob(out.x)


def test_auto_uses_hidden_coordinates_only_when_narrower_than_d():
    x = torch.randn(4, 30, dtype=F64, generator=torch.Generator().manual_seed(3))
    narrow, wide = _potential(30, 8), _potential(30, 40)
    auto = integrate(narrow, x, 0.1, 3).x
    assert torch.equal(auto, integrate(narrow, x, 0.1, 3, coordinates="hidden").x)
    assert not torch.equal(auto, integrate(narrow, x, 0.1, 3, coordinates="x").x)
    assert torch.equal(integrate(wide, x, 0.1, 3).x,
                       integrate(wide, x, 0.1, 3, coordinates="x").x)
    with pytest.raises(ValueError, match="coordinates"):
        integrate(narrow, x, 0.1, 3, coordinates="y")
