"""The zuko neural spline flow baseline (methods/nsf.py): exact density, sampling, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otflows.data.toy import sample_toy
from otflows.distributions import standard_normal_log_prob
from otflows.methods import get_method
from otflows.methods.nsf import NSFConfig, make_trainer

CPU = torch.device("cpu")
CFG = dict(transforms=2, hidden_features=16, hidden_layers=2, bins=8, lr=3e-3, grad_clip=5.0,
           batch_size=128, iters=300, dtype="float64")


def _data(n: int = 2000, seed: int = 0) -> np.ndarray:
    return sample_toy("moons", n, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def trained():
    trainer = make_trainer(CFG, _data(), seed=0, device=CPU)
    losses = [trainer.train_step()["loss"] for _ in range(CFG["iters"])]
    return trainer, losses


def test_registered_and_config_checked():
    assert get_method("nsf").make_trainer is make_trainer
    with pytest.raises(ValueError, match="missing keys"):
        NSFConfig.from_dict({k: v for k, v in CFG.items() if k != "bins"})
    with pytest.raises(ValueError, match="bins"):
        NSFConfig.from_dict({**CFG, "bins": 1})


def test_parameter_count_formula():
    # per transform on d = 2: 3h + (L − 1)(h² + h) + (h + 1)·2(3K − 1) (zuko's masked MLP)
    for t, h, layers, k in [(3, 22, 2, 8), (2, 16, 2, 8), (1, 8, 1, 4)]:
        cfg = {**CFG, "transforms": t, "hidden_features": h, "hidden_layers": layers, "bins": k}
        n = make_trainer(cfg, _data(64), 0, CPU).n_parameters()
        assert n == t * (3 * h + (layers - 1) * (h * h + h) + (h + 1) * 2 * (3 * k - 1))


def test_training_lowers_the_nll(trained):
    _, losses = trained
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.5


def test_log_density_integrates_to_one(trained):
    trainer, _ = trained
    g = np.linspace(-7.0, 7.0, 201)
    xx, yy = np.meshgrid(g, g)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    mass = np.exp(trainer.log_density(grid)).sum() * (g[1] - g[0]) ** 2
    assert abs(mass - 1.0) < 0.01, mass


def test_log_density_is_the_change_of_variables(trained):
    """log p(x) = log N(f(x)) + log|det ∂f/∂x|, the Jacobian by autograd."""
    trainer, _ = trained
    x = _data(5, seed=1)
    z = trainer.forward_map(x)
    jac = [torch.autograd.functional.jacobian(
        lambda v: trainer.flow().transform(v), torch.as_tensor(xi)) for xi in x]
    logdet = np.array([torch.linalg.slogdet(j)[1].item() for j in jac])
    expected = standard_normal_log_prob(torch.as_tensor(z)).numpy() + logdet
    np.testing.assert_allclose(trainer.log_density(x), expected, rtol=1e-9, atol=1e-9)


def test_generate_is_the_inverse_of_base_draws(trained):
    trainer, _ = trained
    a, b = trainer.generate(300, seed=5), trainer.generate(300, seed=5)
    assert a.shape == (300, 2) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, trainer.generate(300, seed=6))
    z = torch.randn(300, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    np.testing.assert_allclose(trainer.forward_map(a), z.numpy(), atol=1e-8)
    ev = trainer.evaluate(_data(200, seed=2), 300, seed=5)
    np.testing.assert_array_equal(ev.samples, a)
    assert ev.metrics["inversion_error"] < 1e-8
    np.testing.assert_allclose(ev.metrics["transport_cost"],
                               np.square(a - z.numpy()).sum(1).mean())
    np.testing.assert_allclose(ev.metrics["nll_nats"],
                               -trainer.log_density(_data(200, seed=2)).mean())


def test_resume_is_bit_exact(assert_resumes_bit_exactly):
    cfg = {**CFG, "iters": 12, "dtype": "float32"}
    data = _data(500)
    resumed, straight = assert_resumes_bit_exactly(make_trainer, cfg, data)
    x = data[:16]
    np.testing.assert_array_equal(resumed.log_density(x), straight.log_density(x))
