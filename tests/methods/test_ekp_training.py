"""EKP training (Algorithm 1, eqs. 20–21) converges to App. C's closed-form Gaussian potentials.

For μ = N(0, diag(A)), ν = N(0, I) and cost ½‖x − y‖², the entropic potentials are quadratic
per axis (c = √(A + ε²/4) − ε/2): e^{ϕ/ε} ∝ N(0, p), p = εc/(1 − c); e^{ψ/ε} ∝ N(0, q),
q = εc/(A − c). Eq. (17) then gives ρ_0 = N(0, A) and ρ_1 = N(0, I). The learned potentials'
curvatures are read off by a least-squares quadratic fit on a grid.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otflows.methods.ekp import make_trainer

A = np.array([0.25, 1.5])
EPS = 1.0
CFG = {"width": 32, "n_layers": 4, "quadratic_base": True, "eps": EPS, "alpha": 0.064,
       "ascent": "alg1", "quad_grid": 0,
       "lr": 1e-3, "batch_size": 64,
       "n_mc": 16, "iters": 800, "n_mc_flow": 8, "flow_batch": 1000, "rtol": 1e-4,
       "atol": 1e-4, "rk4_steps": 0, "nll_points": 0, "norm_grid": 16, "mass_grid": 8,
       "field_grid": 8}


def _curvatures(f) -> np.ndarray:
    """Diagonal second derivatives of a potential, by a quadratic fit on [-2, 2]²."""
    g = np.linspace(-2, 2, 21)
    xx, yy = (a.ravel() for a in np.meshgrid(g, g))
    with torch.no_grad():
        v = f(torch.tensor(np.stack([xx, yy], 1), dtype=torch.float32)).double().numpy()
    design = np.stack([xx**2 / 2, yy**2 / 2, xx * yy, xx, yy, np.ones_like(xx)], 1)
    return np.linalg.lstsq(design, v, rcond=None)[0][:2]


@pytest.mark.parametrize("quadratic_base", [
    True,
    pytest.param(False, marks=pytest.mark.xfail(strict=True, reason=(
        "issue 19, open: started near a constant the potentials are outside L^exp_eps; after "
        "800 steps rho_0 has variances (8.6, 9.4), not (0.25, 1.5)"))),
])
def test_training_on_a_gaussian_pair_reaches_the_closed_form_potentials(quadratic_base):
    # The profile's lr 1e-3 and 800 steps. Potentials started near a constant (App. D, the
    # default): ρ_0 has variances (8.6, 9.4), not (0.25, 1.5) — the flat start is outside
    # L^exp_ε and the coupling's weights are unbounded (potentials.py). With the quadratic
    # base: (0.24, 1.53).
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((20000, 2)) * np.sqrt(A)).astype(np.float32)
    tr = make_trainer({**CFG, "quadratic_base": quadratic_base}, data, 0, torch.device("cpu"))
    for _ in range(CFG["iters"]):
        tr.train_step()
    c = np.sqrt(A + EPS**2 / 4) - EPS / 2
    p_exact, q_exact = EPS * c / (1 - c), EPS * c / (A - c)
    p, q = -EPS / _curvatures(tr.phi), -EPS / _curvatures(tr.psi)
    # Eq. (17) for quadratic potentials: the variances of ρ_0 and ρ_1 per axis.
    var0 = 1 / (1 / p + 1 / (q + EPS))
    var1 = 1 / (1 / (p + EPS) + 1 / q)
    np.testing.assert_allclose(var0, A, rtol=0.1)
    np.testing.assert_allclose(var1, [1.0, 1.0], rtol=0.1)
    # The sharp axis of ϕ (p = 0.26) is the one the entropic blur (variance ε) must undo.
    np.testing.assert_allclose(p[0], p_exact[0], rtol=0.1)
    np.testing.assert_allclose(q[1], q_exact[1], rtol=0.15)
