"""Every registered method through the same checks (the Trainer contract of methods/base.py).

Each method runs with its smoke-profile run config (the first 2-D toy run where it has one),
so a method is tested the day it is registered, on the settings CI runs end to end.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from otflows.data.toy import sample_toy
from otflows.methods import METHODS, build_trainer
from otflows.pipeline.config import load_params
from otflows.pipeline.experiments import Experiment, all_experiments

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
SEED = 3
STEPS = 3  # optimiser steps per check
MAX_STEPS = 60  # at most this many steps for every parameter to move


def _smoke_runs() -> list[Experiment]:
    """The smoke profile's runs, then those of the benchmark profile at smoke size (where the
    benchmark-only methods, nsf and otcfm, have theirs), each (method, name) once."""
    runs: dict[tuple[str, str], Experiment] = {}
    for extra in (["config/smoke.yaml"], ["config/benchmark.yaml", "config/smoke.yaml"]):
        config = load_params([ROOT / "params.yaml", *(ROOT / e for e in extra)],
                             ROOT / "schemas/params.schema.yaml")
        for e in all_experiments(config, ROOT):
            runs.setdefault((e.method, e.name), e)
    return list(runs.values())


RUNS = _smoke_runs()


def _run_of(method: str) -> Experiment:
    runs = [e for e in RUNS if e.method == method]
    assert runs, f"method {method!r} has no run in the smoke profile: add one"
    toys = [e for e in runs if e.data.startswith("data/processed/toy/")]
    return (toys or runs)[0]


def _data(run: Experiment) -> dict[str, np.ndarray]:
    if run.method == "vae":  # grey-level pixels, as the prepared MNIST file holds them
        rng = np.random.default_rng(0)
        return {"train": rng.random((64, 8)), "train_pixels": rng.integers(0, 256, (64, 784)),
                "test": rng.integers(0, 256, (16, 784))}
    if not run.data.startswith("data/processed/toy/"):
        pytest.skip(f"{run.key}: no 2-D toy run to check on")
    rng = np.random.default_rng(0)
    return {"train": sample_toy(run.dataset, 256, rng), "test": sample_toy(run.dataset, 32, rng)}


def _trainer(method: str, seed: int = SEED):
    run = _run_of(method)
    data = _data(run)
    torch.manual_seed(seed)
    return build_trainer(method, run.cfg, data, seed, CPU), data


@pytest.fixture(params=sorted(METHODS))
def method(request) -> str:
    return request.param


def test_loss_is_finite_and_every_parameter_learns(method):
    trainer, _ = _trainer(method)
    params = trainer.parameters()
    assert params and all(isinstance(p, torch.nn.Parameter) for p in params)
    assert trainer.n_parameters() > 0
    before = [p.detach().clone() for p in params]
    # Some parameters wait their turn (JKO-Flow trains map k in subproblem k): run until every
    # parameter has moved, or the run ends, or MAX_STEPS.
    for _ in range(min(trainer.n_steps, MAX_STEPS)):
        logs = trainer.train_step()
        assert np.isfinite(logs["loss"]), logs
        frozen = [i for i, (p, b) in enumerate(zip(params, before, strict=True))
                  if torch.equal(p.detach(), b)]
        if not frozen:
            break
    assert not frozen, f"{method}: parameters {frozen} received no update"


def test_same_seed_gives_identical_results(method):
    runs = []
    for _ in range(2):
        trainer, data = _trainer(method)
        losses = [trainer.train_step()["loss"] for _ in range(STEPS)]
        runs.append((losses, trainer.log_density(data["test"][:8])))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_samples_and_log_densities(method):
    trainer, data = _trainer(method)
    trainer.train_step()
    test = data["test"]
    ev = trainer.evaluate(test, 16, SEED)
    assert ev.samples.shape == (16, test.shape[1])
    assert all(np.isfinite(v) for v in ev.metrics.values()), ev.metrics
    logp = trainer.log_density(test[:8])
    assert logp.shape == (8,) and np.isfinite(logp).all()


def test_generate_is_shaped_finite_and_deterministic_in_seed(method):
    trainer, data = _trainer(method)
    if not hasattr(trainer, "generate"):
        pytest.skip(f"{method}: no generate (not a benchmark method)")
    trainer.train_step()
    d = data["test"].shape[1]
    x = trainer.generate(12, 5)
    assert x.shape == (12, d) and x.dtype == np.float64 and np.isfinite(x).all()
    np.testing.assert_array_equal(trainer.generate(12, 5), x)
    assert not np.array_equal(trainer.generate(12, 6), x)


def test_inverse_undoes_forward(method):
    trainer, data = _trainer(method)
    if not hasattr(trainer, "forward_map"):
        pytest.skip(f"{method}: the learned map is not invertible in closed form")
    trainer.train_step()
    x = np.asarray(data["test"][:16], dtype=np.float64)
    z = trainer.forward_map(x)
    assert z.shape == x.shape and np.isfinite(z).all()
    # exact up to the integrator: fixed-step RK4 at the smoke profile's few steps (OT-Flow's
    # nt_eval = 4 leaves ~3e-3), L-BFGS to its tolerance (CP-Flow)
    np.testing.assert_allclose(trainer.inverse_map(z), x, atol=1e-2, rtol=1e-2)


def test_state_round_trip_gives_identical_outputs(method):
    trainer, data = _trainer(method)
    for _ in range(STEPS):
        trainer.train_step()
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    fresh, _ = _trainer(method)  # untrained: everything must come from the state
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.step_index == trainer.step_index
    np.testing.assert_array_equal(fresh.log_density(data["test"][:8]),
                                  trainer.log_density(data["test"][:8]))
    assert fresh.train_step()["loss"] == trainer.train_step()["loss"]
