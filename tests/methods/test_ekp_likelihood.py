"""EKP (arXiv:2006.06033): the two likelihoods, eq. (17) and the CNF of eq. (8), pinned down.

* The CNF density of a trained network integrates to one on a grid (metric ``density_mass``):
  the pushforward of N(0, I) is a probability density whatever the potentials are, so a mass
  ≠ 1 means the divergence or the ODE is wrong. With App. D's ReLU potentials it was not (the
  exact divergence misses the curvature on the kinks; see ``methods/ekp/potentials.py``).
* The default ODE tolerances are accuracy: halving them moves the NLL by < 0.01 nats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from otflows.data.toy import sample_toy
from otflows.methods.ekp import cnf_log_likelihood, make_trainer

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"width": 32, "n_layers": 4, "quadratic_base": False,
         "ascent": "alg1", "quad_grid": 0,
         "eps": 1.0, "alpha": 1.28e-3, "lr": 3e-3, "batch_size": 128,
         "n_mc": 16, "iters": 40, "n_mc_flow": 16, "flow_batch": 4096, "rtol": 1e-4,
         "atol": 1e-4, "rk4_steps": 0, "nll_points": 20, "norm_grid": 24, "mass_grid": 48,
         "field_grid": 12}


@pytest.fixture(scope="module")
def trained() -> object:
    """A small EKP trained 40 steps on the checkerboard (sharp edges: a kinked field shows)."""
    data = sample_toy("checkerboard", 2000, np.random.default_rng(0))
    tr = make_trainer(SMALL, data, 0, torch.device("cpu"))
    for _ in range(SMALL["iters"]):
        tr.train_step()
    return tr


def test_cnf_density_of_a_trained_model_integrates_to_one(trained):
    # With ReLU potentials (App. D) this mass was 1.1-7 (default checkerboard: 6.56).
    mass = trained.density_mass().mass
    assert abs(mass - 1.0) < 0.01, mass


def test_exact_divergence_matches_finite_differences_of_the_field(trained):
    # A field with jumps has a divergence that autograd does not see; finite differences do.
    flow = trained.flow(torch.Generator().manual_seed(1))
    y = torch.as_tensor(sample_toy("checkerboard", 300, np.random.default_rng(2)),
                        dtype=torch.float32)
    for t in (0.0, 0.5, 0.9):
        _, div = flow.velocity(t, y, divergence=True)
        h, fd = 1e-2, torch.zeros(len(y))
        for j in range(2):
            e = torch.zeros(2)
            e[j] = h
            up, down = flow.velocity(t, y + e)[0], flow.velocity(t, y - e)[0]
            fd = fd + (up[:, j] - down[:, j]) / (2 * h)
        assert abs(float(div.mean() - fd.mean())) < 0.05, (t, float(div.mean()), float(fd.mean()))


def test_halving_the_default_ode_tolerances_moves_the_nll_by_under_a_hundredth(trained):
    ekp = yaml.safe_load((ROOT / "params.yaml").read_text())["ekp"]
    x = torch.as_tensor(sample_toy("checkerboard", 200, np.random.default_rng(3)),
                        dtype=torch.float32)
    flow = trained.flow(torch.Generator().manual_seed(5))
    nll = [-float(cnf_log_likelihood(flow, x, ekp["rtol"] / k, ekp["atol"] / k).double().mean())
           for k in (1, 2)]
    assert abs(nll[0] - nll[1]) < 0.01, nll
