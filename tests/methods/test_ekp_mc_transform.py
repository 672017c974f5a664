"""Why Algorithm 1 runs away (issue 19): its ascent maximises a Monte-Carlo estimate of the
(c, ε)-transform (eq. 19), ε log of a sample mean, which is biased (Jensen) and whose bias
grows without bound as the potential becomes peaked against the proposal N(x, ε). The
semi-dual of eq. (15) in ψ, I(ψ) = E_ν ψ + E_μ ψ^(c,ε), is checked here against its closed
form for ψ = −ε‖y‖²/(2q), e^{ψ/ε} a Gaussian of variance q:

    I(q) = −εd/(2q) + (εd/2) log((q + ε)/q) + ε E_μ‖x‖²/(2(q + ε))   (without E_μ ε log p_D).

On the checkerboard the exact I falls from 2.37 (q = 1) to −24.6 (q = 0.03), while the
estimate with Algorithm 1's N samples rises (N = 64: 2.45 → 7.18): the ascent is rewarded for
collapsing e^{ψ/ε}, as seen in training (ψ's semi-dual ascent alone: ρ_1's covariance 0.85 →
0.001 in 400 steps; after the alternating run's blow-up at ~250 steps, J at N = 64 reads −3.5
but −4.8 at N = 4096).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otflows.data.toy import sample_toy
from otflows.methods.ekp import c_eps_transform

EPS = 1.0


def _semi_dual(x: torch.Tensor, q: float, n_mc: int | None, gen: torch.Generator) -> float:
    """I(ψ) for ψ = −ε‖y‖²/(2q): exact (n_mc None) or with the MC transform of eq. (19)."""
    d = x.shape[1]
    if n_mc is None:
        return (-EPS * d / (2 * q) + EPS * d / 2 * math.log((q + EPS) / q)
                + EPS * float((x**2).sum(-1).mean()) / (2 * (q + EPS)))
    def psi(y: torch.Tensor) -> torch.Tensor:
        return -EPS * (y**2).sum(-1) / (2 * q)

    z = torch.randn(20000, d, generator=gen)
    noise = torch.randn(len(x), n_mc, d, generator=gen)
    return float(psi(z).mean() + c_eps_transform(psi, x, EPS, noise).mean())


def test_the_mc_transform_matches_the_closed_form_for_a_wide_potential():
    x = torch.tensor(sample_toy("checkerboard", 2000, np.random.default_rng(0)),
                     dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    assert _semi_dual(x, 1.0, 1024, gen) == pytest.approx(_semi_dual(x, 1.0, None, gen),
                                                          abs=0.02)


def test_the_mc_semi_dual_rewards_a_collapsing_potential_that_the_exact_one_penalises():
    x = torch.tensor(sample_toy("checkerboard", 2000, np.random.default_rng(0)),
                     dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    exact_wide, exact_peaked = _semi_dual(x, 1.0, None, gen), _semi_dual(x, 0.03, None, gen)
    mc_wide, mc_peaked = _semi_dual(x, 1.0, 64, gen), _semi_dual(x, 0.03, 64, gen)
    assert exact_peaked < exact_wide - 20  # the true objective: collapse is far worse
    assert mc_peaked > mc_wide + 3  # Algorithm 1's estimate (N = 64): collapse is better


def test_the_evaluation_reports_the_bias_for_a_peaked_phi_and_not_for_a_wide_one():
    # metric semi_dual_mc_bias: J at N minus J at 16·N. ϕ = ε log N(0, s) against the data.
    from otflows.methods.ekp import make_trainer

    data = sample_toy("checkerboard", 2000, np.random.default_rng(0)).astype(np.float32)
    cfg = {"width": 8, "n_layers": 2, "quadratic_base": False, "eps": EPS, "alpha": 0.1,
           "ascent": "alg1", "quad_grid": 0,
           "lr": 1e-3, "batch_size": 8, "n_mc": 64, "iters": 1, "n_mc_flow": 4,
           "flow_batch": 10, "rtol": 1e-3, "atol": 1e-3, "rk4_steps": 0, "nll_points": 0,
           "norm_grid": 4, "mass_grid": 4, "field_grid": 4}
    tr = make_trainer(cfg, data, 0, torch.device("cpu"))
    x = torch.as_tensor(data)
    bias = {}
    for s in (3.0, 0.01):
        tr.phi = lambda y, s=s: -EPS * (y**2).sum(-1) / (2 * s)
        bias[s] = tr._semi_dual_mc_bias(x, torch.Generator().manual_seed(1))
    assert abs(bias[3.0]) < 0.05
    assert bias[0.01] > 1.0
