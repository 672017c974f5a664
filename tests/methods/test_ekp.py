"""EKP (arXiv:2006.06033): closed-form checks of eqs. (16)-(19), App. C, and the method contract.

Closed forms used: for ϕ(x) = −ε‖x − m‖²/(2s), e^{ϕ/ε} is an unnormalised Gaussian and
ε log H_v[e^{ϕ/ε}](y) = (εd/2) log(s/(s + v)) − ε‖y − m‖²/(2(s + v)). For two Gaussians with
diagonal covariances the Schrödinger system has quadratic solutions (per axis, with
c = √(AB + ε²/4) − ε/2: e^{ϕ/ε} ∝ N(μ, p), p = εc/(B − c); e^{ψ/ε} ∝ N(ν, q), q = εc/(A − c)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods import get_method
from otflows.methods.ekp import (
    EKPFlow,
    c_eps_transform,
    cnf_log_likelihood,
    dual_terms,
    entropic_interpolation_covariance,
    log_heat_smoothing,
    make_trainer,
    sample_flow,
    w2_geodesic_covariance,
)
from otflows.pipeline.checkpoint import load_checkpoint, save_checkpoint

TINY = {"width": 16, "n_layers": 4, "quadratic_base": False,
        "ascent": "alg1", "quad_grid": 0,
        "eps": 1.0, "alpha": 6.4e-4, "lr": 1e-3, "batch_size": 64,
        "n_mc": 8, "iters": 6, "n_mc_flow": 8, "flow_batch": 64, "rtol": 1e-2, "atol": 1e-2,
        "rk4_steps": 0, "nll_points": 20, "norm_grid": 24, "mass_grid": 8,
        "field_grid": 12}


def quadratic(m: Tensor, s: Tensor, eps: float) -> Callable[[Tensor], Tensor]:
    """ϕ(x) = −ε Σ_j (x_j − m_j)²/(2 s_j): e^{ϕ/ε} ∝ N(m, diag(s)). x [n, d] → [n]."""
    return lambda x: -eps * ((x - m) ** 2 / (2 * s)).sum(-1)


def smoothed_quadratic(y: Tensor, m: Tensor, s: Tensor, v: float, eps: float) -> Tensor:
    """Exact ε log H_v[e^{ϕ/ε}](y) for the quadratic above: [n]."""
    return eps * (0.5 * torch.log(s / (s + v)).sum() - ((y - m) ** 2 / (2 * (s + v))).sum(-1))


# --------------------------------------------------------------------------- eqs. (16), (19)
@pytest.mark.parametrize("v", [0.3, 1.0])
def test_heat_smoothing_of_a_quadratic_matches_the_gaussian_integral(v: float):
    eps = 1.0 if v == 1.0 else 0.5
    gen = torch.Generator().manual_seed(0)
    m, s = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.8, 2.0],
                                                                         dtype=torch.float64)
    y = torch.randn(25, 2, generator=gen, dtype=torch.float64) * 1.5
    noise = torch.randn(25, 4000, 2, generator=gen, dtype=torch.float64)
    phi = quadratic(m, s, eps)
    est = log_heat_smoothing(phi, y, v, eps, noise)
    exact = smoothed_quadratic(y, m, s, v, eps)
    # The MC mean of w = e^{ϕ(x_i)/ε} is unbiased for H_v[e^{ϕ/ε}]; its standard error is
    # std(w)/√N. Compare on that scale (z-scores) and on the log scale (delta method).
    w = torch.exp(phi((y[:, None, :] + math.sqrt(v) * noise).reshape(-1, 2)).reshape(25, -1)
                  / eps)
    se = w.std(1) / math.sqrt(w.shape[1])
    zscore = (w.mean(1) - torch.exp(exact / eps)) / se
    assert zscore.abs().max() < 4.5
    assert 0.2 < zscore.pow(2).mean() < 2.5
    assert ((est - exact).abs() <= 4.5 * eps * se / w.mean(1)).all()
    # eq. (19) is the v = ε case; shared noise [N, d] (common random numbers) also works.
    shared = log_heat_smoothing(phi, y, v, eps, noise[0])
    assert ((shared - exact).abs() <= 5.0 * eps * se / w.mean(1)).all()


def test_c_eps_transform_is_the_psi_maximiser_in_closed_form():
    eps = 1.0
    gen = torch.Generator().manual_seed(1)
    m, s = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.5, 1.5],
                                                                        dtype=torch.float64)
    z = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(30, 8000, 2, generator=gen, dtype=torch.float64)
    log_nu = standard_normal_log_prob(z)
    got = c_eps_transform(quadratic(m, s, eps), z, eps, noise, log_nu)
    exact = eps * log_nu - smoothed_quadratic(z, m, s, eps, eps)
    w = torch.exp(quadratic(m, s, eps)((z[:, None, :] + noise).reshape(-1, 2)).reshape(30, -1))
    log_se = eps * w.std(1) / (math.sqrt(w.shape[1]) * w.mean(1))  # delta method
    assert ((got - exact).abs() <= 4.5 * log_se).all()
    # With ψ = ϕ^(c,ε) exactly, the coupling term of D_ε is ε and D_ε = J(ϕ) (Prop. 1).
    x = torch.randn(4000, 2, generator=gen, dtype=torch.float64) + 0.5
    zz = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    phi = quadratic(m, s, eps)

    def psi(y: Tensor) -> Tensor:  # the exact transform, in closed form
        return eps * standard_normal_log_prob(y) - smoothed_quadratic(y, m, s, eps, eps)

    terms = dual_terms(phi, psi, x, zz, eps, torch.randn(4000, 400, 2, generator=gen,
                                                         dtype=torch.float64))
    assert float(terms.residual) < 0.1
    assert abs(float(terms.dual - terms.semi_dual)) < 0.05


# --------------------------------------------------------------------------- App. C
@dataclass
class GaussianPair:
    """Exact EKP potentials between N(m0, diag(a)) and N(m1, diag(b))."""

    phi: Callable[[Tensor], Tensor]
    psi: Callable[[Tensor], Tensor]


def gaussian_potentials(m0, a, m1, b, eps: float) -> GaussianPair:
    m0, a, m1, b = (np.asarray(v, float) for v in (m0, a, m1, b))
    c = np.sqrt(a * b + eps**2 / 4) - eps / 2
    p, q = eps * c / (b - c), eps * c / (a - c)
    assert (p > 0).all() and (q > 0).all()
    mu, nu = np.zeros_like(m0), np.zeros_like(m0)
    for j in range(len(m0)):  # means: ρ_0 and ρ_1 are products of two Gaussians
        lhs = np.array([[a[j] / p[j], a[j] / (q[j] + eps)], [b[j] / (p[j] + eps), b[j] / q[j]]])
        mu[j], nu[j] = np.linalg.solve(lhs, [m0[j], m1[j]])
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return GaussianPair(quadratic(t(mu), t(p), eps), quadratic(t(nu), t(q), eps))


def test_entropic_closed_form_reduces_to_w2_and_is_symmetric():
    s0 = np.array([[2.0, 0.6], [0.6, 0.5]])
    s1 = np.array([[1.0, -0.3], [-0.3, 1.5]])
    for t in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(entropic_interpolation_covariance(s0, s1, t, 1e-6),
                                   w2_geodesic_covariance(s0, s1, t), atol=1e-6)
    mid = entropic_interpolation_covariance(s0, s1, 0.5, 1.0)
    np.testing.assert_allclose(mid, mid.T, atol=1e-12)
    # The W₂ geodesic's covariance is ((1−t)I + tT) Σ0 ((1−t)I + tT), T the OT map.
    r = np.linalg.cholesky(s0)
    w, u = np.linalg.eigh(r.T @ s1 @ r)
    mid_root = (u * np.sqrt(w)) @ u.T
    tmap = np.linalg.inv(r.T) @ mid_root @ np.linalg.inv(r)
    a = 0.6 * np.eye(2) + 0.4 * tmap
    np.testing.assert_allclose(w2_geodesic_covariance(s0, s1, 0.4), a @ s0 @ a.T, atol=1e-10)


def test_interpolation_of_exact_potentials_has_the_closed_form_covariance():
    eps = 1.0
    a, m0 = np.array([0.5, 1.5]), np.array([1.0, -0.5])
    pair = gaussian_potentials(m0, a, [0.0, 0.0], [1.0, 1.0], eps)
    gen = torch.Generator().manual_seed(2)
    half = [torch.randn(600, 2, generator=gen, dtype=torch.float64) for _ in range(2)]
    # Antithetic pairs (ξ, −ξ): the MC heat kernels keep the centre of a quadratic exactly, so
    # what is compared is eq. (17) itself rather than the MC error of a shifted mean.
    flow = EKPFlow(pair.phi, pair.psi, eps, torch.cat([half[0], -half[0]]),
                   torch.cat([half[1], -half[1]]))
    g = torch.linspace(-5.5, 5.5, 41, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    for t in (0.0, 0.5, 1.0):
        logp = flow.log_density(t, pts)  # eq. (17) with MC heat kernels (eq. 16)
        w = torch.softmax(logp, 0)
        mean = (w[:, None] * pts).sum(0)
        cov = ((pts - mean).T * w) @ (pts - mean)
        expect = entropic_interpolation_covariance(np.diag(a), np.eye(2), t, eps)
        np.testing.assert_allclose(cov.numpy(), expect, atol=0.04 * np.abs(expect).max())
        np.testing.assert_allclose(mean.numpy(), (1 - t) * m0, atol=0.06)  # MC: M = 1200


def test_flow_transports_the_gaussian_along_the_entropic_interpolation():
    eps = 1.0
    a, m0 = np.array([0.5, 1.5]), np.array([1.0, -0.5])
    pair = gaussian_potentials(m0, a, [0.0, 0.0], [1.0, 1.0], eps)
    gen = torch.Generator().manual_seed(3)
    half = [torch.randn(100, 2, generator=gen, dtype=torch.float64) for _ in range(2)]
    flow = EKPFlow(pair.phi, pair.psi, eps, torch.cat([half[0], -half[0]]),
                   torch.cat([half[1], -half[1]]))
    # Sampling: N(0, I) at t = 1 integrated back to t = 0 must give N(m0, diag(a)). The map
    # is affine for exact potentials, so whitened z (mean 0, covariance I exactly) give the
    # map's mean and covariance without sampling error.
    z = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T, correction=0))).T
    x = sample_flow(flow, z, rtol=1e-5, atol=1e-5).x.numpy()
    np.testing.assert_allclose(x.mean(0), m0, atol=0.05)
    np.testing.assert_allclose(np.cov(x.T, bias=True), np.diag(a), atol=0.06)
    # CNF likelihood of eq. (8) with the exact divergence equals the true log-density.
    pts = torch.as_tensor(m0 + np.random.default_rng(0).normal(size=(60, 2)) * np.sqrt(a))
    logp = cnf_log_likelihood(flow, pts, rtol=1e-5, atol=1e-5).numpy()
    true = (-0.5 * ((pts.numpy() - m0) ** 2 / a).sum(1) - 0.5 * np.log(a).sum()
            - np.log(2 * np.pi))
    assert np.abs(logp - true).mean() < 0.1


def test_eq17_and_cnf_log_densities_equal_the_gaussian_closed_form():
    eps = 1.0
    a, m0 = np.array([0.5, 1.5]), np.array([1.0, -0.5])
    pair = gaussian_potentials(m0, a, [0.0, 0.0], [1.0, 1.0], eps)
    gen = torch.Generator().manual_seed(4)
    half = [torch.randn(2000, 2, generator=gen, dtype=torch.float64) for _ in range(2)]
    flow = EKPFlow(pair.phi, pair.psi, eps, torch.cat([half[0], -half[0]]),
                   torch.cat([half[1], -half[1]]))
    g = torch.linspace(-6.0, 7.0, 131, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    grid = torch.stack([xx.ravel(), yy.ravel()], 1)
    log_z = torch.logsumexp(flow.log_density(0.0, grid), 0) + 2 * torch.log(g[1] - g[0])
    pts = torch.as_tensor(m0 + np.random.default_rng(0).normal(size=(40, 2)) * np.sqrt(a))
    true = (-0.5 * ((pts.numpy() - m0) ** 2 / a).sum(1) - 0.5 * np.log(a).sum()
            - np.log(2 * np.pi))
    eq17 = (flow.log_density(0.0, pts) - log_z).numpy()
    cnf = cnf_log_likelihood(flow, pts, rtol=1e-6, atol=1e-6).numpy()
    # MC heat kernels (M = 4000): pointwise noise, no bias on average.
    for est in (eq17, cnf):
        assert np.abs(est - true).mean() < 0.05, np.abs(est - true)
        assert abs(float(np.mean(est - true))) < 0.03, np.mean(est - true)
    assert abs(float(np.mean(eq17 - cnf))) < 0.03


def test_dual_objective_increases_over_the_first_iterations_on_a_gaussian_pair():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4000, 2)) * np.sqrt([0.5, 1.5]) + [1.0, -0.5]
    tr = make_trainer({**TINY, "width": 32, "batch_size": 128, "n_mc": 16, "iters": 100,
                       "lr": 3e-3}, data, 0, torch.device("cpu"))
    gen = torch.Generator().manual_seed(5)
    x = torch.as_tensor(rng.normal(size=(1000, 2)) * np.sqrt([0.5, 1.5]) + [1.0, -0.5],
                        dtype=torch.float32)
    z = torch.randn(1000, 2, generator=gen)
    noise = torch.randn(1000, 32, 2, generator=gen)

    def dual() -> tuple[float, float]:
        """D_ε (eq. 12, best additive constant) and J(ϕ) on one fixed evaluation batch."""
        with torch.no_grad():
            terms = dual_terms(tr.phi, tr.psi, x, z, tr.cfg.eps, noise)
        return float(terms.dual), float(terms.semi_dual)

    values = [dual()]
    for _ in range(5):
        for _ in range(20):
            tr.train_step()
        values.append(dual())
    for k in range(2):  # monotone up to mini-batch noise (Proposition 1)
        seq = [v[k] for v in values]
        assert all(b > a - 0.05 for a, b in zip(seq, seq[1:], strict=False)), values
    assert values[-1][0] > values[0][0] + 0.5, values
    assert values[-1][1] >= values[-1][0] - 1e-9  # J(ϕ) = max_ψ D_ε(ϕ, ψ) ≥ D_ε(ϕ, ψ)


# --------------------------------------------------------------------------- the contract
@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, np.ndarray]:
    from otflows.data.toy import sample_toy

    return (sample_toy("8gaussians", 400, np.random.default_rng(0)),
            sample_toy("8gaussians", 60, np.random.default_rng(1)))


def test_registered_and_finite_loss_with_gradients_everywhere(toy):
    tr = get_method("ekp").make_trainer(TINY, toy[0], 0, torch.device("cpu"))
    logs = tr.train_step()
    assert set(logs) >= {"loss", "dual", "residual", "J_tilde", "I_tilde"}
    assert all(math.isfinite(v) for v in logs.values())
    for net in (tr.phi, tr.psi):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    params = tr.parameters()
    assert [id(p) for p in params] == [id(p) for p in [*tr.phi.parameters(),
                                                         *tr.psi.parameters()]]
    assert sum(p.numel() for p in params) == tr.n_parameters()


def test_same_seed_same_result_and_resume_round_trip(toy, tmp_path):
    a = make_trainer(TINY, toy[0], 3, torch.device("cpu"))
    b = make_trainer(TINY, toy[0], 3, torch.device("cpu"))
    logs_a = [a.train_step() for _ in range(6)]
    logs_b = [b.train_step() for _ in range(3)]
    save_checkpoint({"state": b.state_dict()}, tmp_path / "c.pt")
    c = make_trainer(TINY, toy[0], 3, torch.device("cpu"))
    c.load_state_dict(load_checkpoint(tmp_path / "c.pt")["state"])  # weights_only=True
    logs_c = logs_b + [c.train_step() for _ in range(3)]
    assert logs_a == logs_c
    for key, value in a.state_dict()["phi"].items():
        torch.testing.assert_close(value, c.state_dict()["phi"][key], rtol=0, atol=0)


def test_samples_shape_and_finite_log_densities(toy):
    tr = make_trainer(TINY, toy[0], 0, torch.device("cpu"))
    for _ in range(TINY["iters"]):
        tr.train_step()
    ev = tr.evaluate(toy[1], 50, seed=0)
    assert ev.samples.shape == (50, 2) and ev.samples.dtype == np.float64
    assert np.isfinite(ev.samples).all()
    assert all(math.isfinite(v) for v in ev.metrics.values()), ev.metrics
    for key in ("nll_nats", "nll_closed_form_nats", "transport_cost", "dual_objective",
                "constraint_residual", "n_parameters", "density_mass", "density_mass_error",
                "samples_outside_mass_box", "semi_dual_mc_bias"):
        assert key in ev.metrics
    assert ev.extras["flow_logp"].shape == (5, 12, 12)
    assert ev.extras["flow_velocity"].shape == (5, 16, 16, 2)
    assert ev.extras["flow_samples"].shape == (5, 400, 2)
    logp = tr.log_density(toy[1])
    assert logp.shape == (60,) and np.isfinite(logp).all()
    np.testing.assert_array_equal(logp, tr.log_density(toy[1]))  # deterministic
    again = make_trainer(TINY, toy[0], 0, torch.device("cpu"))
    again.load_state_dict(tr.state_dict())
    np.testing.assert_array_equal(again.evaluate(toy[1], 50, seed=0).samples, ev.samples)


def test_generate_has_the_shape_and_is_deterministic_in_the_seed(toy):
    # The benchmark's sampler (issue 24): float64 [n, d], the same points for the same seed
    # (and the same as evaluate's samples for that seed), other points for another seed.
    tr = make_trainer(TINY, toy[0], 0, torch.device("cpu"))
    for _ in range(TINY["iters"]):
        tr.train_step()
    x = tr.generate(70, seed=4)  # two solves of flow_batch = 64
    assert x.shape == (70, 2) and x.dtype == np.float64 and np.isfinite(x).all()
    np.testing.assert_array_equal(x, tr.generate(70, seed=4))
    assert np.abs(x - tr.generate(70, seed=5)).max() > 1e-3
    np.testing.assert_array_equal(x, tr.evaluate(toy[1], 70, seed=4).samples)


def test_config_names_unknown_missing_and_bad_keys(toy):
    cfg = {k: v for k, v in TINY.items() if k != "width"}
    with pytest.raises(ValueError, match=r"unknown keys \['widht'\], missing keys \['width'\]"):
        make_trainer({**cfg, "widht": 3}, toy[0], 0, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"ekp\.eps=0\.0; expected a number > 0"):
        make_trainer({**TINY, "eps": 0.0}, toy[0], 0, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"ekp\.n_layers=1; expected a number >= 2"):
        make_trainer({**TINY, "n_layers": 1}, toy[0], 0, torch.device("cpu"))


def test_fig1_samples_are_the_flows_samples_at_every_time(toy):
    # Fig. 1's dots: N(0, I) draws at t = 1, pushed back by the model's own flow; at t = 0 they
    # are what sample_flow gives for the same draws, and each time comes from one solve.
    tr = make_trainer(TINY, toy[0], 0, torch.device("cpu"))
    for _ in range(TINY["iters"]):
        tr.train_step()
    times = (0.0, 0.5, 1.0)
    path = tr.field(times=times, samples=30)["flow_samples"]
    z = torch.randn(30, 2, generator=torch.Generator().manual_seed(0 + 11))
    np.testing.assert_array_equal(path[2], z.double().numpy())
    end = sample_flow(tr._density_flow(), z, TINY["rtol"], TINY["atol"]).x
    np.testing.assert_allclose(path[0], end.double().numpy(), atol=0.05)
    assert np.abs(path[1] - path[2]).max() > 1e-3  # the middle time is not a copy of t = 1
