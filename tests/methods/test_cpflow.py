"""CP-Flow (arXiv:2012.05942): closed-form checks of SLQ, CG, Alg. 1, Alg. 2 and the
Gaussian coupling, plus the method contract (every parameter gets a gradient, seeds, resume,
sample shapes, inverse(forward(x)) ≈ x) for CP-Flow, its zuko baselines and amortised VI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otflows.data.coupling import (
    gaussian_entropy,
    gaussian_w2_squared,
    optimal_map,
    random_covariance,
)
from otflows.linalg import conjugate_gradient, exact_log_det, hessian, rademacher, slq_log_det
from otflows.methods import get_method
from otflows.methods.cpflow import CPFlowConfig, make_trainer
from otflows.methods.cpflow_core import CPFlow, invert_potential, surrogate_log_det
from otflows.nn.icnn import ICNN, ConvexPotential

F64 = torch.float64
TOY = {"task": "density", "model": "cpflow", "architecture": "fc", "blocks": 1, "depth": 3,
       "width": 8, "alpha": 1.0, "lr": 5e-3, "weight_decay": 0.0, "lr_halve_every": 2,
       "batch_size": 32, "iters": 3, "cg_tol": 1e-8, "cg_max_iter": 10, "slq_steps": 2,
       "slq_probes": 2, "exact_max_dim": 64, "invert_tol": 1e-8, "invert_max_iter": 500,
       "transforms": 1, "monitor_every": 0, "dtype": "float64"}
VAE = {"task": "vae", "posterior": "cpflow", "latent_dim": 3, "width": 2, "icnn_width": 4,
       "icnn_depth": 2, "context": 3, "lr": 1e-3, "batch_size": 8, "iters": 2, "cg_tol": 1e-6,
       "cg_max_iter": 5}


def potential(d: int, seed: int = 0, depth: int = 3, width: int = 16,
              alpha: float = 0.5) -> ConvexPotential:
    icnn = ICNN(d, width, depth, dtype=F64, generator=torch.Generator().manual_seed(seed))
    pot = ConvexPotential(icnn, alpha=alpha)
    with torch.no_grad():  # a strongly curved ICNN part, so H is far from αI
        pot.b.fill_(3.0)
    return pot


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def toy_data(n: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-1.5, 0.4, (n // 2, 2)), rng.normal(1.5, 0.6, (n // 2, 2))])


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


def test_surrogate_gradient_matches_the_exact_log_det_gradient_at_d3():
    """Alg. 2: E_v[∂/∂θ vᵀ H (stop-grad H⁻¹v)] = ∂ log det H/∂θ (eq. 3), averaged over
    4000 probes at one point (each row of a replicated batch carries its own probe)."""
    pot = potential(3, seed=6, depth=3, width=12)
    x0 = randn(1, 3, seed=2)
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


def test_two_block_flow_density_integrates_to_one():
    """Change of variables with exact log dets: ∫ p = 1 on a fine 2-D grid."""
    flow = CPFlow([potential(2, seed=1, alpha=1.0), potential(2, seed=2, alpha=1.0)])
    g = torch.linspace(-6, 6, 241, dtype=F64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    p = flow.log_prob(pts, "exact").exp()
    assert float(p.sum() * (g[1] - g[0]) ** 2) == pytest.approx(1.0, abs=2e-3)
    z = flow(pts[:50])
    back = flow.inverse(z, 1e-10, 500)
    assert (back.x - pts[:50]).abs().max() < 1e-7


# ------------------------------------------------------------------------- Gaussian coupling
def test_gaussian_w2_closed_form_is_the_cost_of_the_brenier_map():
    rng = np.random.default_rng(0)
    cov = random_covariance(4, rng)
    a = optimal_map(cov)
    x = rng.multivariate_normal(np.zeros(4), cov, 200_000)
    z = x @ a.T
    assert np.allclose(np.cov(z.T), np.eye(4), atol=0.02)  # pushes N(0, Σ) to N(0, I)
    m = np.eye(4) - a
    assert gaussian_w2_squared(cov) == pytest.approx(np.trace(m @ cov @ m.T), rel=1e-10)
    assert gaussian_w2_squared(cov) == pytest.approx(((x - z) ** 2).sum(1).mean(), rel=0.02)
    logp = -0.5 * (np.einsum("ni,ij,nj->n", x, np.linalg.inv(cov), x)
                   + np.linalg.slogdet(2 * np.pi * cov)[1])
    assert gaussian_entropy(cov) == pytest.approx(-logp.mean(), rel=5e-3)


def test_cpflow_with_a_quadratic_potential_has_zero_gap_to_w2():
    """F(x) = ½xᵀΣ^{-1/2}x is convex and its gradient is the optimal map: the trainer's
    metrics must then report KL ≈ 0 and cost ≈ W₂² (checks the coupling bookkeeping)."""
    rng = np.random.default_rng(1)
    cov = random_covariance(3, rng)
    x = rng.multivariate_normal(np.zeros(3), cov, 4000)
    t = make_trainer({**TOY, "task": "coupling", "monitor_every": 1, "iters": 1}, x[:3000], 0,
                     torch.device("cpu"), arrays={"test": x[3000:], "cov": cov})
    a = torch.as_tensor(optimal_map(cov))

    class Quadratic(torch.nn.Module):
        d = 3
        alpha = torch.linalg.eigvalsh(a).min()

        def forward(self, u: torch.Tensor, context=None) -> torch.Tensor:
            return 0.5 * ((u @ a) * u).sum(1)

    t.flow.blocks[0] = Quadratic()
    ev = t.evaluate(x[3000:], 20, 0)
    assert abs(ev.metrics["kl_nats"]) < 4 * ev.metrics["nll_nats_stderr"]  # MC error only
    assert ev.metrics["transport_cost"] == pytest.approx(gaussian_w2_squared(cov), rel=0.05)


# ------------------------------------------------------------------------- method contract
@pytest.mark.parametrize("model", ["cpflow", "maf", "naf", "linear_iaf"])
def test_contract_gradients_seed_samples_and_resume(model: str):
    cfg = {**TOY, "model": model}
    data = toy_data()
    t = make_trainer(cfg, data, 0, torch.device("cpu"))
    logs = t.train_step()
    assert math.isfinite(logs["loss"])
    # every parameter receives a gradient from the last step's loss
    missing = [n for n, p in t.model.named_parameters() if p.grad is None
               or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    state = t.state_dict()
    rest = [t.train_step()["loss"] for _ in range(2)]
    again = make_trainer(cfg, data, 0, torch.device("cpu"))
    assert [again.train_step()["loss"] for _ in range(3)] == [logs["loss"], *rest]  # seeded
    resumed = make_trainer(cfg, data, 0, torch.device("cpu"))
    resumed.load_state_dict(state)
    assert [resumed.train_step()["loss"] for _ in range(2)] == rest  # bit-exact resume
    ev = t.evaluate(data[:50], 30, seed=1)
    assert ev.samples.shape == (30, 2) and ev.samples.dtype == np.float64
    assert all(math.isfinite(v) for v in ev.metrics.values())
    assert np.isfinite(t.log_density(data[:20])).all()
    if model == "cpflow":
        assert ev.metrics["roundtrip_error"] < 1e-6  # inverse(forward(x)) ≈ x
        assert ev.metrics["inversion_error"] < 1e-6
        assert ev.metrics["nll_nats_slq"] == pytest.approx(ev.metrics["nll_nats"], abs=0.3)


def test_registry_and_config_errors():
    assert get_method("cpflow").make_trainer is make_trainer
    with pytest.raises(ValueError, match="missing keys"):
        CPFlowConfig.from_dict({k: v for k, v in TOY.items() if k != "cg_tol"})
    with pytest.raises(ValueError, match="model="):
        CPFlowConfig.from_dict({**TOY, "model": "glow"})
    with pytest.raises(ValueError, match="cg_tol"):
        CPFlowConfig.from_dict({**TOY, "cg_tol": 0.0})
    with pytest.raises(ValueError, match="task="):
        make_trainer({**TOY, "task": "sample"}, toy_data(), 0, torch.device("cpu"))
    with pytest.raises(ValueError, match="d = 784"):
        make_trainer({**TOY, "architecture": "conv"}, toy_data(), 0, torch.device("cpu"))


def test_conv_flow_trains_and_scores_images_with_slq():
    rng = np.random.default_rng(0)
    imgs = rng.normal(size=(12, 784))
    cfg = {**TOY, "architecture": "conv", "depth": 2, "width": 4, "batch_size": 4,
           "cg_tol": 1e-3, "cg_max_iter": 3, "slq_steps": 3, "invert_tol": 1e-4,
           "invert_max_iter": 20, "dtype": "float32"}
    t = make_trainer(cfg, imgs, 0, torch.device("cpu"), arrays={"logit_lambda": 1e-6})
    assert math.isfinite(t.train_step()["loss"])
    assert all(p.grad is not None for p in t.model.parameters())
    ev = t.evaluate(imgs[:4], 2, 0)
    assert math.isfinite(ev.metrics["bpd"]) and ev.samples.shape == (2, 784)


@pytest.mark.parametrize("posterior", ["cpflow", "gaussian"])
def test_amortised_vae_trains_resumes_and_scores(posterior: str):
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, size=(40, 784))
    arrays = {"train_pixels": px, "test_pixels": px[:10], "logit_lambda": 1e-6}
    cfg = {**VAE, "posterior": posterior}
    t = make_trainer(cfg, px.astype(float), 0, torch.device("cpu"), arrays=arrays)
    first = t.train_step()["loss"]
    assert math.isfinite(first)
    trained = [p for m in ([t.model.vae, t.model.head, t.model.flow] if posterior == "cpflow"
                           else [t.model.vae]) for p in m.parameters()]
    assert all(p.grad is not None for p in trained)
    state = t.state_dict()
    nxt = t.train_step()["loss"]
    r = make_trainer(cfg, px.astype(float), 0, torch.device("cpu"), arrays=arrays)
    r.load_state_dict(state)
    assert r.train_step()["loss"] == nxt
    ev = t.evaluate(np.zeros((10, 784)), 10, 0)
    assert math.isfinite(ev.metrics["neg_elbo_nats"]) and ev.samples.shape == (64, 784)


def test_miniboone_run_config_trains_and_its_table_cites_the_paper(tmp_path):
    """The Table 1 run on a 43-D stand-in (MINIBOONE's shape), then its table."""
    from otflows.pipeline.config import load_params
    from otflows.pipeline.experiments import _cpflow_miniboone_runs
    from otflows.reports import TABLES

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    cfg = load_params([root / "params.yaml", root / "config/smoke.yaml"],
                      root / "schemas/params.schema.yaml")
    (run,) = _cpflow_miniboone_runs(cfg)
    data = np.random.default_rng(0).standard_normal((200, 43))
    t = make_trainer(run.cfg, data, 0, torch.device("cpu"))
    while t.step_index < t.n_steps:
        assert math.isfinite(t.train_step()["loss"])
    ev = t.evaluate(data[:40], 5, 0)
    metrics = tmp_path / "miniboone.json"
    metrics.write_text(__import__("json").dumps({"method": "cpflow", "experiment": "miniboone",
                                                 "dataset": "miniboone", **ev.metrics}))
    md = tmp_path / "t.md"
    TABLES["cpflow-miniboone"]([metrics], md, tmp_path / "t.csv")
    text = md.read_text()
    assert "| CP-Flow (paper) | 10.58 |" in text and "| CP-Flow (ours) |" in text
