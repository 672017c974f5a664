"""Monge-Ampère flow: Hessian spectrum against autograd, the RK4 stability bound predicting
the inversion failure, the stability metrics, Fig. 3b's images, and the MAF baseline."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from otflows.methods.mongeampere import SoftplusPotential, integrate, make_trainer
from otflows.methods.mongeampere.diagnostics import (
    RK4_REAL_STABILITY,
    hessian_eigenvalue_range,
    map_condition_number,
    path_eigenvalue_range,
    roundtrip_errors,
    stable_steps,
)

F64 = torch.float64
CPU = torch.device("cpu")
DENSITY = {"task": "density", "width": 16, "epsilon": 0.1, "steps": 4, "lr": 0.01,
           "weight_decay": 0.001, "batch_size": 20, "epochs": 1, "monitor": 0,
           "dtype": "float64"}
MAF = {"task": "maf", "transforms": 2, "hidden": 8, "hidden_layers": 1, "lr": 0.01,
       "weight_decay": 0.0, "batch_size": 20, "epochs": 2, "monitor": 10,
       "dtype": "float32"}


def _potential(d: int, width: int, seed: int = 0) -> SoftplusPotential:
    return SoftplusPotential(d, width, F64, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("d", "width"), [(2, 16), (12, 5)])  # h > d and h < d
def test_hessian_eigenvalue_range_matches_the_autograd_hessian(d, width):
    pot = _potential(d, width)
    with torch.no_grad():
        pot.out.mul_(10.0)  # large curvature of both signs
    x = torch.randn(7, d, generator=torch.Generator().manual_seed(1), dtype=F64)
    lo, hi = hessian_eigenvalue_range(pot, x)
    for i in range(x.shape[0]):
        hess = torch.autograd.functional.hessian(lambda p: pot(p.unsqueeze(0)).sum(), x[i])
        ev = torch.linalg.eigvalsh(hess)
        torch.testing.assert_close(lo[i], ev[0], rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(hi[i], ev[-1], rtol=1e-8, atol=1e-10)


def _quadratic_well(lam: float) -> SoftplusPotential:
    """ϕ(x) = α[softplus(10x₁) + softplus(−10x₁)]: ∇ϕ(0) = 0 and ∇²ϕ(0) = diag(λ, 0) with
    λ = 50α; near x₁ = 0 the flow is the linear test equation of RK4's stability."""
    pot = _potential(2, 2)
    with torch.no_grad():
        pot.weight.copy_(torch.tensor([[10.0, 0.0], [-10.0, 0.0]], dtype=F64))
        pot.bias.zero_()
        pot.out.fill_(lam / 50.0)
    return pot


def test_the_stability_bound_predicts_the_inversion_failure():
    """Data → latent integrates dx/dt = −∇ϕ, contracting x₁ by e^(−λT). Past h·λ = 2.785
    the discrete map expands it instead (|R(−hλ)| > 1), and data → latent → data no longer
    returns (the MNIST failure of issue 21: h·λmax = 3.6 at 40 steps)."""
    lam, T = 29.0, 1.0
    pot = _quadratic_well(lam)
    x = torch.tensor([[1e-4, 0.3], [-2e-4, -0.7]], dtype=F64)
    _, hi = path_eigenvalue_range(pot, x, T / 10, 10)
    assert hi == pytest.approx(lam, rel=1e-4)
    for n, stable in ((10, False), (11, True)):  # h·λ = 2.9 and 2.64
        z = integrate(pot, x, T / n, n, reverse=True).x
        assert (z[:, 0].abs() < x[:, 0].abs()).all() == stable
        torch.testing.assert_close(z[:, 1], x[:, 1], rtol=0, atol=1e-12)
    unstable = roundtrip_errors(pot, x, T / 10, 10, "data")
    n = stable_steps(T, hi, margin=0.1)  # h·λ ≤ 0.28: RK4's error R(z)R(−z) − 1 ≈ z⁶/72
    assert T / n * hi <= 0.1 * RK4_REAL_STABILITY
    good = roundtrip_errors(pot, x, T / n, n, "data")
    assert unstable["max_abs"] > 1.0 and good["max_abs"] < 1e-4
    assert stable_steps(T, hi) == 14 and stable_steps(T, -1.0) == 1  # margin 0.8
    assert set(good) == {"max_abs", "mean_l2", "max_l2"}
    with pytest.raises(ValueError, match="start"):
        roundtrip_errors(pot, x, 0.1, 2, "latent")


def test_condition_number_of_a_linear_flow_is_exact():
    """ϕ quadratic near 0 would give exp(−TH); here check against the finite Jacobian's SVD."""
    pot = _potential(3, 6)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    cond = map_condition_number(pot, x, 0.1, 5)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(
            lambda p: integrate(pot, p.unsqueeze(0), 0.1, 5, reverse=True).x.squeeze(0), x[i])
        sv = torch.linalg.svdvals(jac)
        torch.testing.assert_close(cond[i], sv[0] / sv[-1], rtol=1e-8, atol=0)


def _images(n: int, seed: int = 0) -> np.ndarray:
    from otflows.data.mnist import dequantize, logit_transform

    rng = np.random.default_rng(seed)
    return logit_transform(dequantize(rng.integers(0, 256, size=(n, 16)), rng))


def test_density_evaluation_reports_the_stability_metrics_and_varied_figure_images():
    y = _images(60)
    labels = np.repeat(np.arange(10), 6)[np.random.default_rng(3).permutation(60)]
    tr = make_trainer(DENSITY, y, 0, CPU, arrays={"test": y, "test_labels": labels,
                                                  "logit_lambda": np.array(1e-6)})
    for _ in range(3):
        tr.train_step()
    ev = tr.evaluate(y, 16, 0)
    m = ev.metrics
    n = DENSITY["steps"]
    assert m["rk4_steps"] == n
    assert m["h_lambda_max"] == pytest.approx(DENSITY["epsilon"] * m["hessian_lambda_max"])
    assert m["h_lambda_max"] >= 0 and m["h_lambda_min_abs"] >= 0
    for name in ("base_data_base", "data_base_data"):
        for k in (n, 2 * n):
            assert m[f"roundtrip_{name}_max_abs_rk4_{k}"] >= 0
            assert m[f"roundtrip_{name}_mean_l2_rk4_{k}"] >= 0
    assert m["inversion_error"] == m[f"roundtrip_data_base_data_mean_l2_rk4_{n}"]
    assert m[f"condition_number_data_base_max_rk4_{n}"] >= 1.0
    # Fig. 3b: one image of each class, in class order, and every frame differs
    np.testing.assert_array_equal(ev.extras["flow_labels"], np.arange(10))
    np.testing.assert_array_equal(labels[ev.extras["flow_index"]], np.arange(10))
    path = ev.extras["flow_path"]
    assert path.shape[1:] == (10, 16)
    np.testing.assert_array_equal(path[0], y[ev.extras["flow_index"]])
    steps = np.abs(np.diff(path, axis=0)).reshape(path.shape[0] - 1, -1).max(axis=1)
    assert (steps > 1e-6).all()


def test_figure_images_without_labels_are_a_seeded_choice_of_distinct_images():
    y = _images(40)
    tr = make_trainer(DENSITY, y, 0, CPU, arrays={"test": y})
    idx = tr.figure_images(40, 10)
    assert len(set(idx.tolist())) == 10 and idx.tolist() != list(range(10))
    np.testing.assert_array_equal(idx, tr.figure_images(40, 10))


# ------------------------------------------------------------------------ MAF baseline
def test_maf_baseline_trains_resumes_bit_identically_and_scores_nll():
    y = _images(60)
    arrays = {"test": y[:20], "logit_lambda": np.array(1e-6)}
    full = make_trainer(MAF, y, 0, CPU, arrays=arrays)
    half = make_trainer(MAF, y, 0, CPU, arrays=arrays)
    while full.step_index < full.n_steps:
        logs = full.train_step()
        assert np.isfinite(logs["loss"])
    for _ in range(full.n_steps // 2):
        half.train_step()
    buf = io.BytesIO()
    torch.save(half.state_dict(), buf)
    buf.seek(0)
    resumed = make_trainer(MAF, y, 5, CPU, arrays=arrays)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    while resumed.step_index < resumed.n_steps:
        resumed.train_step()
    for p, q in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
    ev = full.evaluate(y[:20], 8, 0)
    assert ev.samples.shape == (8, 16)
    assert ev.metrics["n_parameters"] == full.n_parameters() > 0
    np.testing.assert_allclose(-full.log_density(y[:20]).mean(), ev.metrics["nll_nats"],
                               rtol=1e-6)
    assert 0 < ev.metrics["bpd"] < 100
    assert ev.extras["epoch_curve"].shape == (MAF["epochs"], 3)
    with pytest.raises(ValueError, match="not a Monge-Ampère MAF baseline state"):
        full.load_state_dict({"format": "x"})
