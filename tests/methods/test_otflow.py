"""OT-Flow: closed-form flow checks, invertibility, the objective and the Trainer contract."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from otflows.methods import otflow
from otflows.methods.otflow import (
    OTFlowConfig,
    integrate,
    objective,
    pull_back,
    push_forward,
    terminal_cost,
)
from otflows.nn.potentials import OTFlowPotential

F64 = torch.float64
CPU = torch.device("cpu")
CFG = {"width": 8, "n_layers": 2, "rank": 10, "nt": 3, "nt_eval": 4, "alpha": 5.0,
       "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.02, "weight_decay": 0.0, "batch_size": 64,
       "iters": 6, "K": 1, "dtype": "float64"}


def _data(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) * np.array([1.5, 0.5]) + np.array([1.0, -0.5])


def _potential(d: int, seed: int = 0) -> OTFlowPotential:
    return OTFlowPotential(d, 8, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the flow
def test_quadratic_potential_gives_the_exact_linear_flow():
    # N ≡ 0 (w = 0): Φ = ½ sᵀSs + bᵀs, S = AᵀA, so dz/dt = −(S_xx z + S_xt t + b_x) is linear;
    # with y = (z, t, 1) it is y' = G y and z(1) = [e^G (x, 0, 1)]_x, log det = log det e^{−S_xx}
    d = 3
    phi = _potential(d)
    with torch.no_grad():
        phi.w.zero_()
        phi.b.copy_(torch.tensor([0.3, -0.2, 0.1, 0.4], dtype=F64))
    S = (phi.A.T @ phi.A).detach()
    G = torch.zeros(d + 2, d + 2, dtype=F64)
    G[:d, :d], G[:d, d], G[:d, d + 1] = -S[:d, :d], -S[:d, d], -phi.b.detach()[:d]
    G[d, d + 1] = 1.0  # t' = 1
    x = torch.randn(5, d, dtype=F64)
    y0 = torch.cat([x, torch.zeros(5, 1, dtype=F64), torch.ones(5, 1, dtype=F64)], 1)
    exact_z = (y0 @ torch.linalg.matrix_exp(G).T)[:, :d]
    exact_logdet = torch.linalg.slogdet(torch.linalg.matrix_exp(-S[:d, :d])).logabsdet
    with torch.no_grad():
        out = integrate(phi, x, nt=64)
    torch.testing.assert_close(out.z, exact_z, rtol=0, atol=1e-8)
    torch.testing.assert_close(out.logdet, exact_logdet.expand(5), rtol=0, atol=1e-12)


def test_logdet_equals_log_abs_det_of_the_jacobian_of_the_map():
    phi = _potential(2, seed=3)
    x = torch.randn(4, 2, dtype=F64)
    out = integrate(phi, x, nt=48)
    for i in range(4):
        J = torch.autograd.functional.jacobian(lambda v: integrate(phi, v[None], 48).z[0], x[i])
        assert abs(torch.linalg.slogdet(J).logabsdet.item() - out.logdet[i].item()) < 1e-6


def test_inverse_of_forward_is_identity_and_logdets_cancel():
    phi = _potential(2, seed=1)
    x = torch.randn(50, 2, dtype=F64) * 2
    errors = []
    with torch.no_grad():
        for nt in (16, 32):
            fwd = integrate(phi, x, nt=nt)
            back = integrate(phi, fwd.z, nt=nt, reverse=True)
            errors.append((back.z - x).norm(dim=1).max().item())
            assert (fwd.logdet + back.logdet).abs().max() < 1e-4
    assert errors[1] < 1e-5 and errors[0] / errors[1] > 10  # RK4: error ~ h⁴
    assert torch.all(fwd.kinetic >= 0) and torch.all(back.kinetic >= 0)
    torch.testing.assert_close(fwd.kinetic, back.kinetic, rtol=1e-5, atol=1e-8)


def test_composition_of_maps_and_its_inverse():
    maps = [_potential(2, seed=s) for s in (1, 2)]
    x = torch.randn(20, 2, dtype=F64)
    with torch.no_grad():
        out = push_forward(maps, x, 16)
        one = integrate(maps[1], integrate(maps[0], x, 16).z, 16)
        back = pull_back(maps, out.z, 16)
    torch.testing.assert_close(out.z, one.z)
    assert (back.z - x).abs().max() < 1e-4 and (back.logdet + out.logdet).abs().max() < 1e-4


def test_terminal_cost_is_gaussian_nll_in_nats():
    z = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=F64)
    c = terminal_cost(z, torch.tensor([0.0, 0.5], dtype=F64))
    expected = torch.tensor([np.log(2 * np.pi), np.log(2 * np.pi) + 2.5 - 0.5], dtype=F64)
    torch.testing.assert_close(c, expected)


# ----------------------------------------------------------------------------- objective
def test_objective_is_finite_and_every_parameter_gets_a_gradient():
    cfg = OTFlowConfig.from_dict(CFG)
    phi = _potential(2)
    x = torch.as_tensor(_data(16), dtype=F64)
    loss, logs = objective(phi, x, cfg)
    assert torch.isfinite(loss) and set(logs) >= {"loss", "L", "C", "R"}
    assert all(isinstance(v, float) for v in logs.values())
    assert abs(logs["loss"] - (logs["L"] + 5.0 * logs["C"] + 0.5 * logs["R"])) < 1e-10
    loss.backward()
    for name, p in phi.named_parameters():
        if name == "c":  # Φ's constant never reaches ∇Φ or ΔΦ, as in the published code
            assert p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- config
def test_config_names_unknown_and_missing_keys():
    with pytest.raises(ValueError, match=r"unknown keys \['widht'\].*missing keys \['width'\]"):
        OTFlowConfig.from_dict({**{k: v for k, v in CFG.items() if k != "width"}, "widht": 3})
    with pytest.raises(ValueError, match="nt=0"):
        OTFlowConfig.from_dict({**CFG, "nt": 0})
    with pytest.raises(ValueError, match="dtype"):
        OTFlowConfig.from_dict({**CFG, "dtype": "float16"})
    with pytest.raises(ValueError, match="lr"):
        OTFlowConfig.from_dict({**CFG, "lr": 0.0})
    assert OTFlowConfig.from_dict({**CFG, "alpha": 5}).alpha == 5.0


def test_otflow_requires_k_equal_one():
    with pytest.raises(ValueError, match="K == 1"):
        otflow.make_trainer({**CFG, "K": 2}, _data(), 0, CPU)


# ----------------------------------------------------------------------------- trainer
def _run(trainer, n: int) -> list[dict]:
    return [trainer.train_step() for _ in range(n)]


def _round_trip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["step_index"] == b["step_index"]
    for k in a["potential"]:
        assert torch.equal(a["potential"][k], b["potential"][k]), k
    assert torch.equal(a["generator"], b["generator"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sorted(sa) == sorted(sb)
    for i in sa:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[i][key], sb[i][key]), (key, i)


def test_resume_from_state_dict_is_bit_identical():
    full = otflow.make_trainer(CFG, _data(), 3, CPU)
    logs_full = _run(full, 6)
    first = otflow.make_trainer(CFG, _data(), 3, CPU)
    logs_a = _run(first, 3)
    resumed = otflow.make_trainer(CFG, _data(), 99, CPU)  # seed is overwritten by the state
    resumed.load_state_dict(_round_trip(first.state_dict()))
    logs_b = _run(resumed, 3)
    assert logs_a + logs_b == logs_full
    _assert_same_state(resumed.state_dict(), full.state_dict())
    assert full.step_index == full.n_steps == 6
    with pytest.raises(RuntimeError, match="last step"):
        full.train_step()


def test_same_seed_twice_is_identical_and_other_seed_differs():
    runs = [_run(otflow.make_trainer(CFG, _data(), seed, CPU), 3) for seed in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_state_dict_is_a_snapshot_and_rejects_foreign_states():
    t = otflow.make_trainer(CFG, _data(), 0, CPU)
    state = t.state_dict()
    before = state["potential"]["K0"].clone()
    _run(t, 2)
    assert torch.equal(state["potential"]["K0"], before)
    with pytest.raises(ValueError, match="format"):
        t.load_state_dict({"format": "something else"})


def test_evaluate_and_log_density_after_a_little_training():
    cfg = {**CFG, "iters": 40, "batch_size": 128, "nt": 4, "nt_eval": 6}
    data = _data(600)
    t = otflow.make_trainer(cfg, data, 0, CPU)
    logs = _run(t, 40)
    assert logs[-1]["C"] < logs[0]["C"]
    ev = t.evaluate(data[:200], n_samples=150, seed=4)
    assert ev.samples.shape == (150, 2) and ev.samples.dtype == np.float64
    assert set(ev.metrics) >= {"nll_nats", "transport_cost", "displacement_cost",
                               "inversion_error", "n_parameters"}
    assert all(np.isfinite(v) for v in ev.metrics.values())
    assert ev.metrics["inversion_error"] < 1e-3 and ev.metrics["n_parameters"] == 125
    again = t.evaluate(data[:200], n_samples=150, seed=4)
    assert np.array_equal(again.samples, ev.samples) and again.metrics == ev.metrics
    # the density is the change of variables: −mean log ρ̂ over the test set is the NLL, and
    # the 2-D density integrates to ≈ 1 on a grid that holds the mass
    logp = t.log_density(data[:200])
    assert logp.shape == (200,) and np.isfinite(logp).all()
    assert abs(-logp.mean() - ev.metrics["nll_nats"]) < 1e-10
    g = np.linspace(-7.0, 8.0, 151)
    xx, yy = np.meshgrid(g, g - 0.5)
    density = np.exp(t.log_density(np.stack([xx.ravel(), yy.ravel()], 1)))
    mass = density.sum() * (g[1] - g[0]) ** 2
    assert abs(mass - 1.0) < 0.03, mass


def test_parameters_and_forward_and_inverse_maps():
    t = otflow.make_trainer(CFG, _data(), 0, CPU)
    _run(t, 2)
    assert [id(p) for p in t.parameters()] == [id(p) for p in t.potential.parameters()
                                               if p is not t.potential.c]
    x = _data(40, seed=2)
    z = t.forward_map(x)
    assert z.shape == (40, 2) and z.dtype == np.float64
    with torch.no_grad():
        expect = push_forward([t.potential], torch.as_tensor(x), CFG["nt_eval"]).z
    assert np.array_equal(z, expect.numpy())
    back = t.inverse_map(z)
    # RK4 with nt_eval = 4 steps each way: the round trip is exact only up to its O(h⁴) error
    assert back.dtype == np.float64 and np.abs(back - x).max() < 1e-2
    # inverse_map is how evaluate draws its samples
    y = torch.randn(30, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    assert np.array_equal(t.inverse_map(y.numpy()), t.evaluate(x, 30, seed=4).samples)


def test_float32_training_runs():
    t = otflow.make_trainer({**CFG, "dtype": "float32"}, _data(), 0, CPU)
    logs = _run(t, 2)
    assert all(np.isfinite(v) for v in logs[-1].values())
    assert t.evaluate(_data(50), 20, 0).samples.dtype == np.float64


def test_rejects_bad_data():
    with pytest.raises(ValueError, match="shape"):
        otflow.make_trainer(CFG, np.zeros(5), 0, CPU)
    with pytest.raises(ValueError, match="non-finite"):
        otflow.make_trainer(CFG, np.full((5, 2), np.nan), 0, CPU)
    t = otflow.make_trainer(CFG, _data(), 0, CPU)
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        t.log_density(np.zeros((3, 3)))
