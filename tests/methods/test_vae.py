"""The MNIST VAE: shapes, ELBO terms, bit-exact resume through the shared training loop,
and the CLI path params → checkpoint → latents, metrics, samples → figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from otflows.cli.main import main
from otflows.methods.vae import VAEConfig, make_trainer
from otflows.nn.vae import negative_elbo
from otflows.pipeline.training import run_training

CFG = {"latent_dim": 3, "width": 2, "lr": 1e-3, "batch_size": 16, "iters": 6}


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(40, 784))


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"expected exactly the keys"):
        VAEConfig.from_dict({**CFG, "depth": 2})
    with pytest.raises(ValueError, match=r"vae.width=0; expected a number >= 1"):
        VAEConfig.from_dict({**CFG, "width": 0})
    with pytest.raises(ValueError, match=r"vae.lr=-1; expected a number > 0"):
        VAEConfig.from_dict({**CFG, "lr": -1})


def test_shapes_and_elbo_terms(pixels):
    tr = make_trainer(CFG, pixels, 0, torch.device("cpu"))
    z = tr.encode_means(pixels)
    assert z.shape == (40, 3) and z.dtype == np.float64
    dec = tr.decode(z)
    assert dec.shape == (40, 784) and (dec >= 0).all() and (dec <= 1).all()
    x = torch.as_tensor(pixels[:5], dtype=torch.float32) / 255
    elbo = negative_elbo(tr.model, x, torch.zeros(5, 3))
    assert (elbo.kl >= 0).all() and torch.allclose(elbo.total, elbo.recon + elbo.kl)
    ev = tr.evaluate(pixels[:10], 7, seed=0)
    assert ev.samples.shape == (7, 784) and ev.extras["reconstructions"].shape == (10, 784)
    assert all(np.isfinite(v) for v in ev.metrics.values())
    assert tr.log_density(pixels[:4]).shape == (4,)
    with pytest.raises(ValueError, match=r"expected pixels \[n, 784\]"):
        tr.encode_means(pixels[:, :100])


def test_every_parameter_gets_a_gradient_and_loss_drops(pixels):
    tr = make_trainer({**CFG, "iters": 20, "lr": 3e-3}, pixels, 0, torch.device("cpu"))
    first = tr.train_step()["loss"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.model.parameters())
    for _ in range(19):
        last = tr.train_step()["loss"]
    assert last < first


def test_resume_through_the_training_loop_is_bit_exact(pixels, tmp_path):
    straight = make_trainer(CFG, pixels, 0, torch.device("cpu"))
    full = run_training(straight, run_key="vae/t", config_hash="h", resume_path=tmp_path / "a",
                        checkpoint_every=100, log_every=1, progress=False)
    first = make_trainer({**CFG, "iters": 3}, pixels, 0, torch.device("cpu"))
    for _ in range(3):
        first.train_step()
    resumed = make_trainer(CFG, pixels, 0, torch.device("cpu"))
    resumed.load_state_dict(first.state_dict())
    for _ in range(3):
        resumed.train_step()
    for a, b in zip(full.state["model"].values(), resumed.state_dict()["model"].values(),
                    strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="not a VAE trainer state"):
        resumed.load_state_dict({"format": "otflows.otflow/1"})


def test_cli_train_latents_and_figure(tmp_path, pixels):
    labels = np.arange(40) % 10
    data = tmp_path / "mnist5k.npz"
    np.savez(data, train=np.zeros((30, 784)), train_pixels=pixels[:30].astype(np.uint8),
             validation_pixels=pixels[30:34].astype(np.uint8),
             test_pixels=pixels[34:].astype(np.uint8), train_labels=labels[:30],
             validation_labels=labels[30:34], test_labels=labels[34:])
    model = tmp_path / "ckpt/vae/mnist5k/model.pt"
    assert main(["train", "--method", "vae", "--experiment", "mnist5k", "--dataset", "mnist5k",
                 "--data", str(data), "--config", json.dumps(CFG), "--out", str(model),
                 "--history", str(tmp_path / "h.csv"), "--record", str(tmp_path / "r.json"),
                 "--checkpoint-every", "2", "--log-every", "2", "--no-progress"]) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["key"] == "vae/mnist5k" and record["config"] == CFG
    out = tmp_path / "latents.npz"
    samples = tmp_path / "samples/vae/mnist5k.npz"
    assert main(["prepare", "mnist-latents", "--checkpoint", str(model), "--data", str(data),
                 "--eval-samples", "5", "--out", str(out), "--out-metrics",
                 str(tmp_path / "m.json"), "--out-samples", str(samples)]) == 0
    with np.load(out) as d:
        assert d["train"].shape == (30, 3) and d["test"].shape == (6, 3)
        assert d["validation_labels"].tolist() == [0, 1, 2, 3]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["method"] == "vae" and metrics["dataset"] == "mnist5k"
    assert np.isfinite(metrics["neg_elbo_nats"]) and metrics["latent_dim"] == 3
    assert main(["figure", "vae", "--inputs", str(samples), "--out",
                 str(tmp_path / "vae.png")]) == 0
    assert (tmp_path / "vae.png").stat().st_size > 1000 and (tmp_path / "vae.svg").exists()
