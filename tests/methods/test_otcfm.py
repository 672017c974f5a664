"""OT-CFM (methods/otcfm.py): the minibatch OT pairing, the CNF density against closed forms,
ODE-tolerance sensitivity, sampling and bit-exact resume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from flow_matching.utils import ModelWrapper
from torch import Tensor

from otflows.data.toy import sample_toy
from otflows.methods import get_method
from otflows.methods.otcfm import OTCFMConfig, make_trainer, ot_pairing

CPU = torch.device("cpu")
CFG = dict(width=32, depth=2, lr=3e-3, batch_size=128, iters=300, atol=1e-5, rtol=1e-5,
           dtype="float32")


def _data(n: int = 2000, seed: int = 0) -> np.ndarray:
    return sample_toy("moons", n, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def trained():
    trainer = make_trainer(CFG, _data(), seed=0, device=CPU)
    losses = [trainer.train_step()["loss"] for _ in range(CFG["iters"])]
    return trainer, losses


class _Linear(ModelWrapper):
    """v(x, t) = A x: the flow is x(t) = exp(tA) x(0), so N(0, I) at t = 0 becomes
    N(0, e^A e^Aᵀ) at t = 1."""

    def __init__(self, a: Tensor) -> None:
        super().__init__(torch.nn.Identity())
        self.a = a

    def forward(self, x: Tensor, t: Tensor, **extras) -> Tensor:
        return x @ self.a.T.to(x.dtype)


def test_registered_and_config_checked():
    assert get_method("otcfm").make_trainer is make_trainer
    with pytest.raises(ValueError, match="missing keys"):
        OTCFMConfig.from_dict({k: v for k, v in CFG.items() if k != "atol"})
    with pytest.raises(ValueError, match="batch_size"):
        OTCFMConfig.from_dict({**CFG, "batch_size": 1})


def test_parameter_count_formula():
    for w, depth in [(48, 3), (40, 2), (8, 1)]:
        n = make_trainer({**CFG, "width": w, "depth": depth}, _data(64), 0, CPU).n_parameters()
        assert n == 4 * w + (depth - 1) * (w * w + w) + 2 * (w + 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairing_is_the_brute_force_optimal_permutation(seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    x1 = 2.0 * torch.randn(6, 2, generator=gen, dtype=torch.float64) + 1.0
    cost = torch.cdist(x0, x1).square().numpy()  # cost[i, j] = ‖x0_i − x1_j‖²
    best = min(itertools.permutations(range(6)),
               key=lambda s: sum(cost[s[j], j] for j in range(6)))
    np.testing.assert_array_equal(ot_pairing(x0, x1), np.array(best))


def test_minibatch_pairs_are_coupled_by_ot():
    """The trainer's batch is the OT coupling: no swap of two partners lowers the cost (cyclical
    monotonicity for 2-cycles, which a random pairing of 64 points violates many times)."""
    trainer = make_trainer({**CFG, "batch_size": 64}, _data(500), 0, CPU)
    x0, x1 = trainer.coupled_batch()
    cost = torch.cdist(x0.double(), x1.double()).square()
    own = cost.diagonal()
    assert (own[:, None] + own[None, :] <= cost + cost.T + 1e-5).all()


def test_log_density_matches_the_gaussian_pushforward():
    """Exact divergence through flow_matching's compute_likelihood, against the closed form."""
    trainer = make_trainer({**CFG, "dtype": "float64"}, _data(64), 0, CPU)
    a = torch.tensor([[0.3, 0.5], [-0.2, -0.4]], dtype=torch.float64)
    trainer.velocity = _Linear(a)
    m = torch.linalg.matrix_exp(a)
    cov = m @ m.T
    x = torch.as_tensor(_data(50, seed=3)) * 0.5
    gauss = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov)
    expected = gauss.log_prob(x)
    # to the dopri5 tolerance (1e-5); a wrong divergence (sign, a missing term) is off by ~0.1
    np.testing.assert_allclose(trainer.log_density(x.numpy()), expected.numpy(), atol=5e-5)
    z = torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    np.testing.assert_allclose(trainer.inverse_map(z.numpy()), (z @ m.T).numpy(), atol=5e-5)
    np.testing.assert_allclose(trainer.forward_map((z @ m.T).numpy()), z.numpy(), atol=5e-5)
    kinetic, displacement = trainer.transport_costs(z.numpy())
    # ∫₀¹‖A e^{tA} z‖² dt by Simpson's rule on a fine grid
    ts = torch.linspace(0, 1, 2001, dtype=torch.float64)
    speed = torch.stack([((z @ torch.linalg.matrix_exp(t * a).T) @ a.T).square().sum(1)
                         for t in ts])
    w = torch.ones(2001, dtype=torch.float64)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    exact = (w[:, None] * speed).sum(0) / (3 * 2000)
    np.testing.assert_allclose(kinetic, exact.numpy(), rtol=1e-4, atol=5e-5)
    np.testing.assert_allclose(displacement, (z @ m.T - z).square().sum(1).numpy(), rtol=1e-4,
                               atol=5e-5)


def test_training_lowers_the_loss(trained):
    _, losses = trained
    assert np.mean(losses[-30:]) < 0.8 * np.mean(losses[:30])


def test_log_density_integrates_to_one(trained):
    trainer, _ = trained
    g = np.linspace(-6.0, 6.0, 121)
    xx, yy = np.meshgrid(g, g)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    mass = np.exp(trainer.log_density(grid)).sum() * (g[1] - g[0]) ** 2
    assert abs(mass - 1.0) < 0.01, mass


def test_halving_the_ode_tolerances_moves_the_nll_little(trained):
    trainer, _ = trained
    test = _data(400, seed=4)
    finer = make_trainer({**CFG, "atol": CFG["atol"] / 2, "rtol": CFG["rtol"] / 2}, _data(64),
                         0, CPU)
    finer.load_state_dict(trainer.state_dict())
    fine, coarse = finer.log_density(test), trainer.log_density(test)
    assert abs(fine.mean() - coarse.mean()) < 0.01
    # per point too (dopri5 controls the batch's RMS error; at 1e-4 single points move 0.03)
    assert np.abs(fine - coarse).max() < 0.01, np.abs(fine - coarse).max()


def test_generate_shape_determinism_and_evaluate(trained):
    trainer, _ = trained
    a, b = trainer.generate(200, seed=5), trainer.generate(200, seed=5)
    assert a.shape == (200, 2) and a.dtype == np.float64 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, trainer.generate(200, seed=6))
    test = _data(100, seed=2)
    ev = trainer.evaluate(test, 200, seed=5)
    np.testing.assert_array_equal(ev.samples, a)
    np.testing.assert_allclose(ev.metrics["nll_nats"], -trainer.log_density(test).mean())
    # a straight-line flow: kinetic cost ≥ displacement (Jensen), and close to it
    m = ev.metrics
    assert m["displacement_cost"] - 1e-4 <= m["transport_cost"] <= 1.2 * m["displacement_cost"]
    assert m["inversion_error"] < 1e-3


def test_resume_is_bit_exact(assert_resumes_bit_exactly):
    cfg = {**CFG, "iters": 12, "batch_size": 32}
    data = _data(500)
    assert_resumes_bit_exactly(make_trainer, cfg, data)
