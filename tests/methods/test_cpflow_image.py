"""Table 2's image model: the convolutional input-augmented ICNN is convex, the multi-scale
CP-Flow's log-likelihood is the change of variables of its map (checked against the
autograd Jacobian), it inverts, and a smoke-size MNIST-shaped run trains and evaluates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otflows.methods.cpflow import make_trainer
from otflows.methods.cpflow.image import ImageCPFlow, image_shape, squeeze, unsqueeze
from otflows.nn.icnn_conv import ConvAugICNN

torch.set_num_threads(1)


def test_squeeze_is_a_permutation_and_unsqueeze_inverts_it():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).reshape(2, -1)
    y = squeeze(x, (3, 4, 6))
    assert sorted(y[0].tolist()) == sorted(x[0].tolist())
    img = x.reshape(2, 3, 4, 6)
    # channel 4c + 2i + j of the squeezed image holds pixels (2h + i, 2w + j) of channel c
    assert torch.equal(y.reshape(2, 12, 2, 3)[:, 4 * 1 + 2 * 1 + 0], img[:, 1, 1::2, 0::2])
    assert torch.equal(unsqueeze(y, (3, 4, 6)), x)


def test_image_shapes():
    assert image_shape(784) == (1, 28, 28) and image_shape(3072) == (3, 32, 32)
    with pytest.raises(ValueError, match="d = 100"):
        image_shape(100)


def test_conv_icnn_is_convex_after_data_init():
    gen = torch.Generator().manual_seed(0)
    icnn = ConvAugICNN((2, 4, 4), width=6, depth=3, dtype=torch.float64, generator=gen)
    x = torch.randn(64, 32, generator=gen, dtype=torch.float64) * 3
    icnn.initialize_from_data(x)
    assert (icnn.log_scale.exp() > 0).all()
    for xi in x[:5]:
        hess = torch.autograd.functional.hessian(lambda v: icnn(v[None])[0], xi)
        assert torch.linalg.eigvalsh(0.5 * (hess + hess.T)).min() > -1e-10
    # along a random line F is convex: second differences are non-negative
    a, b = x[:1], torch.randn(1, 32, generator=gen, dtype=torch.float64)
    t = torch.linspace(-3, 3, 41, dtype=torch.float64)[:, None]
    f = icnn(a + t * b)
    assert (f[:-2] - 2 * f[1:-1] + f[2:] > -1e-9).all()


@pytest.fixture(scope="module")
def flow():
    gen = torch.Generator().manual_seed(1)
    fl = ImageCPFlow((1, 4, 4), blocks=1, width=4, depth=2, alpha=0.5, scales=3,
                     dtype=torch.float64, generator=gen)
    x = torch.randn(32, 16, generator=gen, dtype=torch.float64) * 2 + 1
    fl.initialize(x)
    return fl, x


def test_layout_three_scales(flow):
    fl, _ = flow
    kinds = [k for k, _i, _s in fl.plan]
    assert kinds == ["norm", "block", "squeeze"] * 2 + ["norm", "block"]
    assert [s for k, _i, s in fl.plan if k == "block"] == [(1, 4, 4), (4, 2, 2), (16, 1, 1)]


def test_log_prob_is_the_change_of_variables(flow):
    fl, x = flow
    pts = x[:3]
    logp = fl.log_prob(pts, "exact")
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: _with_graph(fl, v[None])[0], pts[i])
        want = -0.5 * (_with_graph(fl, pts[i:i + 1]).square().sum() + 16 * np.log(2 * np.pi))
        want = want + torch.linalg.slogdet(jac)[1]
        assert abs(float(logp[i] - want.detach())) < 1e-8
    gen = torch.Generator().manual_seed(0)
    slq = fl.log_prob(pts, "slq", slq_steps=16, slq_probes=64, generator=gen)
    assert torch.allclose(slq, logp, atol=0.5)


def _with_graph(fl: ImageCPFlow, x: torch.Tensor) -> torch.Tensor:
    """f(x) keeping the graph (the Jacobian reference)."""
    h = x
    for kind, i, shape in fl.plan:
        if kind == "norm":
            h = fl.norms[i](h)
        elif kind == "block":
            f = fl.blocks[i](h)
            h = torch.autograd.grad(f.sum(), h, create_graph=True)[0]
        else:
            h = squeeze(h, shape)
    return h


def test_inverse_recovers_the_input(flow):
    fl, x = flow
    back = fl.inverse(fl(x[:4]), tol=1e-10, max_iter=500)
    assert float((back.x - x[:4]).abs().max()) < 1e-6


def test_surrogate_objective_has_gradients_for_every_layer(flow):
    fl, x = flow
    gen = torch.Generator().manual_seed(2)
    obj, prior, logs = fl.surrogate_nll(x[:8], gen, 1e-8, 64)
    obj.mean().backward()
    for name, p in fl.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    fl.zero_grad()
    assert logs["cg_residual"] < 1e-6 and prior.shape == (8,)


def test_smoke_multiscale_run_on_mnist_shaped_data():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(24, 784))
    lam = 1e-6
    u = (pixels + rng.random(pixels.shape)) / 256
    logit = np.log((lam + (1 - 2 * lam) * u) / (1 - lam - (1 - 2 * lam) * u))
    cfg = {"task": "density", "model": "cpflow", "architecture": "multiscale", "blocks": 1,
           "depth": 1, "width": 2, "alpha": 0.2, "activation": "softplus", "actnorm": False,
           "lr": 1e-3, "weight_decay": 0.0, "lr_halve_every": 0, "batch_size": 8, "iters": 2,
           "cg_tol": 1e-2, "cg_max_iter": 4, "slq_steps": 3, "slq_probes": 1,
           "exact_max_dim": 64, "invert_tol": 1e-2, "invert_max_iter": 5, "transforms": 1,
           "monitor_every": 0, "dtype": "float32", "compile": False}
    tr = make_trainer(cfg, logit[:20], 0, torch.device("cpu"),
                      {"test": logit[20:], "logit_lambda": np.array(lam)})
    assert isinstance(tr.flow, ImageCPFlow)
    for _ in range(2):
        logs = tr.train_step()
        assert np.isfinite(logs["loss"])
    assert bool(tr.flow.initialized)
    ev = tr.evaluate(logit[20:], 2, 0)
    assert np.isfinite(ev.metrics["nll_nats"]) and np.isfinite(ev.metrics["bpd"])
    assert ev.samples.shape == (2, 784)
