"""Monge-Ampère flow: closed-form derivatives, App. A, reversibility, symmetry, Trainer
contract (parameters, forward/inverse maps), config validation."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from otflows.data.ising import ising_problem
from otflows.methods import get_method
from otflows.methods.mongeampere import (
    DensityConfig,
    IsingConfig,
    SoftplusPotential,
    SymmetryGroup,
    integrate,
    make_trainer,
    negative_log_likelihood,
    standard_normal_log_prob,
    symmetrized_potential,
)
from otflows.ode import rk4

F64 = torch.float64
CPU = torch.device("cpu")
DENSITY = {"task": "density", "width": 16, "epsilon": 0.1, "steps": 4, "lr": 0.01,
           "weight_decay": 0.001, "batch_size": 50, "epochs": 3, "monitor": 40,
           "dtype": "float64"}
ISING = {"task": "ising", "width": 16, "epsilon": 0.1, "steps": 3, "lr": 0.01,
         "weight_decay": 0.0, "batch_size": 16, "iters": 6, "symmetrize": True,
         "snapshots": 2, "dtype": "float64"}


def _potential(d: int, width: int = 24, seed: int = 0) -> SoftplusPotential:
    return SoftplusPotential(d, width, F64, torch.Generator().manual_seed(seed))


def _data(n: int = 130, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) * np.array([1.5, 0.5]) + np.array([1.0, -0.5])


@pytest.fixture(scope="module")
def ising4() -> dict[str, np.ndarray]:
    return ising_problem(4).arrays()


def _trainer(task: str, seed: int = 0, ising_arrays: dict | None = None):
    if task == "density":
        test = _data(60, seed=1)
        return make_trainer(DENSITY, _data(), seed, CPU, arrays={"test": test})
    return make_trainer(ISING, ising_arrays["train"], seed, CPU, arrays=ising_arrays)


# ------------------------------------------------------------------- closed-form derivatives
@pytest.mark.parametrize("d", [2, 10, 784])
def test_closed_form_gradient_and_laplacian_match_autograd(d):
    phi = _potential(d, width=32 if d < 784 else 16)
    x = torch.randn(3, d, dtype=F64, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    grad = torch.autograd.grad(phi(x).sum(), x, create_graph=True)[0]
    hess_diag = torch.stack([torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0][:, i]
                             for i in range(d)], dim=1)
    der = phi.derivatives(x)
    torch.testing.assert_close(der.grad, grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(der.laplacian, hess_diag.sum(1), rtol=1e-10, atol=1e-12)


def test_derivatives_are_differentiable_in_the_weights():
    phi = _potential(5)
    x = torch.randn(4, 5, dtype=F64)
    der = phi.derivatives(x)
    (der.grad.square().sum() + der.laplacian.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in phi.parameters())


# ------------------------------------------------------------------------------- App. A
class _Quadratic:
    """ϕ(x) = λx²/2 in d = 1: ∇ϕ = λx, ∇²ϕ = λ (Appendix A)."""

    d = 1

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def vector_field(self):
        return lambda x: (self.lam * x, torch.full((x.shape[0],), self.lam, dtype=x.dtype))


@pytest.mark.parametrize("lam", [0.7, -0.4])
def test_appendix_a_gaussian_scales_by_exp_lambda_t(lam):
    # p(x, t) = α/√(2π) exp(−α²x²/2), α(t) = e^{−λt}; parcels move as x(t) = z e^{λt}
    eps, steps = 0.05, 40
    t = eps * steps
    z = torch.linspace(-2.5, 2.5, 11, dtype=F64).unsqueeze(1)
    out = integrate(_Quadratic(lam), z, eps, steps)
    w = lam * eps  # RK4 multiplies a linear ODE's state by R(w) = Σ_{k≤4} wᵏ/k! per step
    torch.testing.assert_close(out.x, z * (1 + w + w**2 / 2 + w**3 / 6 + w**4 / 24) ** steps,
                               rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(out.x, z * math.exp(lam * t), rtol=1e-7, atol=1e-12)
    alpha = math.exp(-lam * t)
    log_p = standard_normal_log_prob(z) + out.delta_logp
    exact = math.log(alpha) - 0.5 * math.log(2 * math.pi) - 0.5 * alpha**2 * out.x[:, 0] ** 2
    torch.testing.assert_close(log_p, exact, rtol=1e-7, atol=1e-7)


# -------------------------------------------------------------------------- reversibility
def test_rk4_forward_then_backward_returns_to_the_start():
    phi = _potential(10, width=32)
    x = torch.randn(7, 10, dtype=F64, generator=torch.Generator().manual_seed(3))
    fwd = integrate(phi, x, 0.1, 20)
    back = integrate(phi, fwd.x, 0.1, 20, reverse=True)
    assert (fwd.x - x).abs().max() > 1e-2  # the flow moved the points
    torch.testing.assert_close(back.x, x, rtol=0, atol=1e-8)
    torch.testing.assert_close(back.delta_logp, -fwd.delta_logp, rtol=0, atol=1e-8)


def test_symmetrised_flow_is_reversed_by_replaying_the_elements():
    group = SymmetryGroup(4)
    phi = _potential(16, width=16)
    x = torch.randn(5, 16, dtype=F64, generator=torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(0)
    fwd = integrate(phi, x, 0.1, 6, group=group, generator=gen)
    back = integrate(phi, fwd.x, 0.1, 6, reverse=True, group=group,
                     elements=fwd.elements[::-1])
    torch.testing.assert_close(back.x, x, rtol=0, atol=1e-8)
    torch.testing.assert_close(back.delta_logp, -fwd.delta_logp, rtol=0, atol=1e-8)


def test_nll_of_a_zero_potential_is_the_gaussian_nll():
    phi = _potential(3)
    with torch.no_grad():
        phi.out.zero_()
    x = torch.randn(6, 3, dtype=F64)
    nll, _ = negative_log_likelihood(phi, x, 0.1, 5)
    torch.testing.assert_close(nll, -standard_normal_log_prob(x))


def test_nll_is_a_normalised_density_in_1d():
    # ∫ p(x, T) dx = 1 for the flow's density (trapezoid on a wide grid)
    phi = _potential(1, width=12, seed=5)
    with torch.no_grad():
        phi.out.mul_(4.0)
    grid = torch.linspace(-12, 12, 6001, dtype=F64).unsqueeze(1)
    nll, _ = negative_log_likelihood(phi, grid, 0.05, 40)
    mass = torch.trapezoid(torch.exp(-nll), grid[:, 0]).item()
    assert abs(mass - 1.0) < 1e-4


# ------------------------------------------------------------------------------- symmetry
def test_symmetrised_potential_is_invariant_under_every_group_element():
    L = 4
    group = SymmetryGroup(L)
    phi = _potential(L * L, width=8, seed=2)
    x = torch.randn(3, L * L, dtype=F64, generator=torch.Generator().manual_seed(6))
    ref = symmetrized_potential(phi, group, x)
    assert group.order == 2 * 8 * L * L
    for k in range(group.perms.shape[0]):
        for sign in (1, -1):
            idx = torch.full((3,), k, dtype=torch.int64)
            s = torch.full((3, 1), sign, dtype=torch.int64)
            moved = group.act(x, idx, s)
            torch.testing.assert_close(symmetrized_potential(phi, group, moved), ref,
                                       rtol=1e-12, atol=1e-12)
    # ...while the unsymmetrised potential is not
    idx = torch.ones(3, dtype=torch.int64)
    assert not torch.allclose(phi(group.act(x, idx, torch.ones(3, 1, dtype=torch.int64))),
                              phi(x))


def test_a_sampled_step_is_rk4_on_the_field_of_phi_composed_with_g():
    # ∇(ϕ̃∘g)(x) = gᵀ∇ϕ̃(gx), ∇²(ϕ̃∘g)(x) = ∇²ϕ̃(gx): stepping in y = gx is the same step
    group = SymmetryGroup(4)
    phi = _potential(16, width=16, seed=7)
    x = torch.randn(4, 16, dtype=F64)
    g = group.sample(4, torch.Generator().manual_seed(1))
    field = phi.vector_field()

    def f(t, state):
        grad, lap = field(group.act(state[:, :16], *g))
        return torch.cat([group.act_inverse(grad, *g), -lap[:, None]], dim=1)

    ref = rk4(f, torch.cat([x, x.new_zeros(4, 1)], 1), 0.0, 0.1, 1)
    out = integrate(phi, x, 0.1, 1, group=group, elements=[g])
    torch.testing.assert_close(out.x, ref[:, :16])
    torch.testing.assert_close(out.delta_logp, ref[:, 16])


def test_group_acts_orthogonally():
    group = SymmetryGroup(3)
    x = torch.randn(5, 9, dtype=F64)
    idx, sign = group.sample(5, torch.Generator().manual_seed(2))
    y = group.act(x, idx, sign)
    torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1))
    torch.testing.assert_close(group.act_inverse(y, idx, sign), x)


# -------------------------------------------------------------------- the Trainer contract
@pytest.mark.parametrize("task", ["density", "ising"])
def test_finite_loss_and_every_parameter_gets_a_gradient(task, ising4):
    tr = _trainer(task, ising_arrays=ising4)
    before = [p.detach().clone() for p in tr.potential.parameters()]
    logs = tr.train_step()
    assert all(isinstance(v, float) for v in logs.values()) and math.isfinite(logs["loss"])
    for p, b in zip(tr.potential.parameters(), before, strict=True):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
        assert not torch.equal(p.detach(), b)


@pytest.mark.parametrize("task", ["density", "ising"])
def test_same_seed_gives_identical_runs(task, ising4):
    a, b = _trainer(task, 3, ising4), _trainer(task, 3, ising4)
    la = [a.train_step()["loss"] for _ in range(3)]
    lb = [b.train_step()["loss"] for _ in range(3)]
    assert la == lb
    c = _trainer(task, 4, ising4)
    assert [c.train_step()["loss"] for _ in range(3)] != la


@pytest.mark.parametrize("task", ["density", "ising"])
def test_resume_from_a_saved_state_is_bit_identical(task, ising4):
    full = _trainer(task, ising_arrays=ising4)
    while full.step_index < full.n_steps:
        full.train_step()
    part = _trainer(task, ising_arrays=ising4)
    for _ in range(full.n_steps // 2 + 1):  # mid-epoch for the density task
        part.train_step()
    buf = io.BytesIO()
    torch.save(part.state_dict(), buf)
    buf.seek(0)
    resumed = _trainer(task, seed=99, ising_arrays=ising4)  # the seed must not matter
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    while resumed.step_index < resumed.n_steps:
        resumed.train_step()
    for p, q in zip(full.potential.parameters(), resumed.potential.parameters(), strict=True):
        assert torch.equal(p, q)
    ea = full.evaluate(_data(30, 2) if task == "density" else np.zeros((0, 16)), 20, 0)
    eb = resumed.evaluate(_data(30, 2) if task == "density" else np.zeros((0, 16)), 20, 0)
    assert ea.metrics == eb.metrics
    np.testing.assert_array_equal(ea.samples, eb.samples)
    for key in ea.extras:
        np.testing.assert_array_equal(ea.extras[key], eb.extras[key])


def test_density_evaluation_samples_and_log_densities(ising4):
    tr = _trainer("density")
    while tr.step_index < tr.n_steps:
        tr.train_step()
    test = _data(50, 2)
    ev = tr.evaluate(test, 33, seed=0)
    assert ev.samples.shape == (33, 2) and ev.samples.dtype == np.float64
    assert all(math.isfinite(v) for v in ev.metrics.values())
    assert ev.metrics["inversion_error"] < 1e-6 and ev.metrics["transport_cost"] > 0
    assert ev.extras["epoch_curve"].shape == (DENSITY["epochs"], 3)  # Fig. 3a points
    logp = tr.log_density(test)
    assert logp.shape == (50,) and np.isfinite(logp).all()
    np.testing.assert_allclose(-logp.mean(), ev.metrics["nll_nats"], rtol=1e-10)


def test_ising_evaluation_reports_an_upper_bound_with_the_required_keys(ising4):
    tr = _trainer("ising", ising_arrays=ising4)
    while tr.step_index < tr.n_steps:
        tr.train_step()
    ev = tr.evaluate(np.zeros((0, 16)), 400, seed=0)
    for key in ("L", "coupling", "offset", "exact_free_energy", "variational_free_energy",
                "relative_error"):
        assert math.isfinite(ev.metrics[key])
    assert ev.metrics["L"] == 4
    # the variational free energy bounds −ln Z from above (eq. 7), beyond sampling noise
    gap = ev.metrics["variational_free_energy"] - ev.metrics["exact_free_energy"]
    assert gap > -3 * ev.metrics["variational_free_energy_stderr"]
    assert ev.samples.shape == (400, 16)
    assert set(np.unique(ev.extras["spins"])) <= {-1, 1}
    assert ev.extras["snapshot_spins"].shape == (2, ISING["batch_size"], 4, 4)  # ≤ 25 each
    assert ev.extras["loss_curve"].shape == (ISING["iters"],)
    assert np.isfinite(tr.log_density(ev.samples[:10])).all()


def test_images_get_bits_per_dim_and_a_flow_strip():
    rng = np.random.default_rng(0)
    from otflows.data.mnist import dequantize, logit_transform

    px = rng.integers(0, 256, size=(40, 16))
    y = logit_transform(dequantize(px, rng))
    cfg = {**DENSITY, "epochs": 1, "batch_size": 20, "steps": 3}
    tr = make_trainer(cfg, y, 0, CPU, arrays={"test": y[:10], "logit_lambda": np.array(1e-6)})
    tr.train_step()
    ev = tr.evaluate(y[:10], 16, 0)
    assert 0 < ev.metrics["bpd"] < 100
    assert ev.extras["flow_pixels"].shape[1:] == (10, 16)
    assert ev.extras["sample_pixels"].shape == (16, 16)


# ---------------------------------------------------------------------------- validation
def test_registered_and_config_errors_name_the_key():
    assert get_method("mongeampere").make_trainer is make_trainer
    with pytest.raises(ValueError, match="task"):
        make_trainer({**DENSITY, "task": "x"}, _data(), 0, CPU)
    with pytest.raises(ValueError, match="unknown keys \\['extra'\\]"):
        DensityConfig.from_dict({**DENSITY, "extra": 1})
    with pytest.raises(ValueError, match="epsilon"):
        DensityConfig.from_dict({**DENSITY, "epsilon": -0.1})
    with pytest.raises(KeyError, match="prepare ising"):
        make_trainer(ISING, np.eye(16), 0, CPU, arrays={})
    with pytest.raises(ValueError, match="batch_size"):
        IsingConfig.from_dict({**ISING, "batch_size": 1})
    with pytest.raises(ValueError, match="symmetrize"):
        IsingConfig.from_dict({**ISING, "symmetrize": 1})
    with pytest.raises(ValueError, match="dtype"):
        DensityConfig.from_dict({**DENSITY, "dtype": "float16"})
    with pytest.raises(ValueError, match="task"):
        DensityConfig.from_dict({**DENSITY, "task": "ising"})


def test_a_state_of_the_other_task_is_refused(ising4):
    density, ising = _trainer("density"), _trainer("ising", ising_arrays=ising4)
    with pytest.raises(ValueError, match="not a Monge-Ampère density state"):
        density.load_state_dict(ising.state_dict())


# ------------------------------------------------------------- parameters and the maps
@pytest.mark.parametrize("task", ["density", "ising"])
def test_parameters_are_the_potentials(task, ising4):
    tr = _trainer(task, ising_arrays=ising4)
    params = tr.parameters()
    assert len(params) == 3 and all(isinstance(p, torch.nn.Parameter) for p in params)
    assert [id(p) for p in params] == [id(p) for p in tr.potential.parameters()]
    assert sum(p.numel() for p in params) == tr.n_parameters()
    tr.train_step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_density_forward_and_inverse_maps_invert_each_other():
    tr = _trainer("density")
    for _ in range(3):
        tr.train_step()
    x = _data(25, 3)
    z = tr.forward_map(x)
    assert z.shape == (25, 2) and z.dtype == np.float64
    ref = negative_log_likelihood(tr.potential, torch.as_tensor(x), DENSITY["epsilon"],
                                  DENSITY["steps"])[1].x
    np.testing.assert_array_equal(z, ref.detach().numpy())  # the NLL's pull-back (eq. 6)
    assert np.abs(z - x).max() > 1e-3
    back = tr.inverse_map(z)
    assert back.shape == (25, 2) and back.dtype == np.float64
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(tr.inverse_map(np.zeros((0, 2))), np.zeros((0, 2)))
