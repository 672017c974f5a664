"""JKO-Flow (Algorithm 1): K = 1 is OT-Flow; K > 1 keeps K maps and composes them."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from otflows.methods import jko, otflow
from otflows.methods.otflow import integrate, pull_back

CPU = torch.device("cpu")
CFG = {"width": 8, "n_layers": 2, "rank": 10, "nt": 3, "nt_eval": 4, "alpha": 5.0,
       "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.02, "weight_decay": 0.0, "batch_size": 64,
       "iters": 3, "K": 2, "dtype": "float64"}


def _data(n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 2)) * np.array([1.5, 0.5]) + np.array([1.0, -0.5])


def _round_trip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_k_equal_one_reproduces_otflow_exactly():
    cfg = {**CFG, "K": 1, "iters": 5}
    a = otflow.make_trainer(cfg, _data(), 4, CPU)
    b = jko.make_trainer(cfg, _data(), 4, CPU)
    logs_a = [a.train_step() for _ in range(5)]
    logs_b = [b.train_step() for _ in range(5)]
    assert [{k: v for k, v in lb.items() if k != "subproblem"} for lb in logs_b] == logs_a
    for k, v in a.potential.state_dict().items():
        assert torch.equal(v, b.potential.state_dict()[k]), k
    assert len(b.maps) == 1 and b.n_parameters() == a.n_parameters()
    ea, eb = a.evaluate(_data(80), 40, 2), b.evaluate(_data(80), 40, 2)
    assert np.array_equal(ea.samples, eb.samples)
    assert {k: eb.metrics[k] for k in ea.metrics} == ea.metrics
    assert np.array_equal(a.log_density(_data(30)), b.log_density(_data(30)))


def test_continuing_from_the_single_shot_run_equals_training_from_scratch():
    cfg = {**CFG, "K": 3}
    scratch = jko.make_trainer(cfg, _data(), 4, CPU)
    while scratch.step_index < scratch.n_steps:
        scratch.train_step()
    single = otflow.make_trainer({**cfg, "K": 1}, _data(), 4, CPU)
    while single.step_index < single.n_steps:
        single.train_step()
    cont = jko.make_trainer(cfg, _data(), 4, CPU)
    cont.continue_from_single_shot(_round_trip(single.state_dict()))
    assert cont.step_index == cfg["iters"] and len(cont.maps) == 1
    while cont.step_index < cont.n_steps:
        cont.train_step()
    assert len(cont.maps) == len(scratch.maps) == 3
    for ma, mb in zip(cont.maps, scratch.maps, strict=True):
        for k in ma:
            assert torch.equal(ma[k], mb[k]), k
    with pytest.raises(ValueError, match="expected its last step"):
        half = otflow.make_trainer({**cfg, "K": 1, "iters": 6}, _data(), 4, CPU)
        half.train_step()
        jko.make_trainer(cfg, _data(), 4, CPU).continue_from_single_shot(half.state_dict())


def test_two_subproblems_keep_two_maps_and_push_the_data_forward():
    t = jko.make_trainer(CFG, _data(), 0, CPU)
    assert t.n_steps == 6
    logs = [t.train_step() for _ in range(3)]
    assert [lg["subproblem"] for lg in logs] == [1.0, 1.0, 1.0]
    assert len(t.maps) == 1
    # Alg. 1, line 5: the samples of subproblem 2 are the training set pushed through map 1
    with torch.no_grad():
        pushed = integrate(t.final_potentials()[0], t.train, CFG["nt"]).z
    torch.testing.assert_close(t.data, pushed, rtol=0, atol=1e-12)
    assert len(t.optimizer.state) == 0  # a fresh Adam for the new subproblem
    logs = [t.train_step() for _ in range(3)]
    assert [lg["subproblem"] for lg in logs] == [2.0, 2.0, 2.0]
    state = _round_trip(t.state_dict())
    assert len(state["jko_maps"]) == 2
    assert not torch.equal(state["jko_maps"][0]["K0"], state["jko_maps"][1]["K0"])
    ev = t.evaluate(_data(60), 50, 1)
    assert ev.samples.shape == (50, 2) and np.isfinite(ev.samples).all()
    assert ev.metrics["n_maps"] == 2 and ev.metrics["n_parameters_total"] == 2 * 125
    # the samples of each JKO iterate (Fig. 5): the same draws through maps k..1 only
    it = ev.extras["iterate_samples"]
    assert it.shape == (2, 50, 2) and it.dtype == np.float64
    assert np.array_equal(it[-1], ev.samples)
    y = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        first = pull_back(t.final_potentials()[:1], y, CFG["nt_eval"]).z
    assert np.array_equal(it[0], first.numpy()) and not np.array_equal(it[0], it[1])
    # forward_map runs through both maps in turn; inverse_map undoes it
    x = _data(20)
    z = t.forward_map(x)
    with torch.no_grad():
        expect = integrate(t.final_potentials()[1],
                           integrate(t.final_potentials()[0], torch.as_tensor(x),
                                     CFG["nt_eval"]).z, CFG["nt_eval"]).z
    assert np.array_equal(z, expect.numpy())
    assert np.abs(t.inverse_map(z) - x).max() < 1e-2  # RK4 with nt_eval = 4: O(h⁴) error
    # every parameter of the current map but Φ's constant c (it enters neither ∇Φ nor ΔΦ)
    assert len(t.parameters()) == len(list(t.potential.parameters())) - 1
    assert all(np.isfinite(v) for v in ev.metrics.values())
    logp = t.log_density(_data(60))
    assert logp.shape == (60,) and np.isfinite(logp).all()
    assert abs(-logp.mean() - ev.metrics["nll_nats"]) < 1e-10


@pytest.mark.parametrize("split", [2, 3, 4])
def test_resume_across_subproblems_is_bit_identical(split):
    full = jko.make_trainer(CFG, _data(), 7, CPU)
    logs_full = [full.train_step() for _ in range(6)]
    first = jko.make_trainer(CFG, _data(), 7, CPU)
    logs = [first.train_step() for _ in range(split)]
    resumed = jko.make_trainer(CFG, _data(), 0, CPU)
    resumed.load_state_dict(_round_trip(first.state_dict()))
    logs += [resumed.train_step() for _ in range(6 - split)]
    assert logs == logs_full
    a, b = resumed.state_dict(), full.state_dict()
    for ma, mb in zip(a["jko_maps"], b["jko_maps"], strict=True):
        assert all(torch.equal(ma[k], mb[k]) for k in ma)
    ea, eb = resumed.evaluate(_data(40), 30, 3), full.evaluate(_data(40), 30, 3)
    assert np.array_equal(ea.samples, eb.samples) and ea.metrics == eb.metrics


def test_rejects_states_that_do_not_match():
    t = jko.make_trainer(CFG, _data(), 0, CPU)
    plain = otflow.make_trainer({**CFG, "K": 1}, _data(), 0, CPU).state_dict()
    with pytest.raises(ValueError, match="jko_maps"):
        t.load_state_dict(plain)
    state = t.state_dict()
    state["step_index"] = 4  # four steps but no finished map
    with pytest.raises(ValueError, match="maps"):
        t.load_state_dict(state)
