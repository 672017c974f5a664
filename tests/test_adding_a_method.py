"""Adding a method needs nothing but its module and a registry entry: a Gaussian fitted by
maximum likelihood (about 20 lines) is registered and run through the CLI's train and
evaluate, exactly as the Snakemake rules call them."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from otflows import methods
from otflows.cli.io import save_npz
from otflows.cli.main import main

GAUSSIAN_FIT = '''
"""A diagonal Gaussian fitted by maximum likelihood: the smallest method the harness runs."""
import numpy as np
import torch

from otflows.distributions import standard_normal_log_prob
from otflows.methods.base import Evaluation


class GaussianFit:
    def __init__(self, cfg, train, seed, device):
        self.x = torch.as_tensor(train, dtype=torch.float64)
        self.mu = torch.nn.Parameter(torch.zeros(self.x.shape[1], dtype=torch.float64))
        self.log_sigma = torch.nn.Parameter(torch.zeros_like(self.mu))
        self.opt = torch.optim.Adam(self.parameters(), lr=cfg["lr"])
        self.n_steps, self.step_index = cfg["iters"], 0

    def parameters(self):
        return [self.mu, self.log_sigma]

    def n_parameters(self):
        return 2 * self.mu.numel()

    def _logp(self, x):
        z = (x - self.mu) / self.log_sigma.exp()
        return standard_normal_log_prob(z) - self.log_sigma.sum()

    def train_step(self):
        self.opt.zero_grad()
        loss = -self._logp(self.x).mean()
        loss.backward()
        self.opt.step()
        self.step_index += 1
        return {"loss": loss.item()}

    def state_dict(self):
        return {"mu": self.mu.detach().clone(), "log_sigma": self.log_sigma.detach().clone(),
                "opt": self.opt.state_dict(), "step_index": self.step_index}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.mu.copy_(state["mu"])
            self.log_sigma.copy_(state["log_sigma"])
        self.opt.load_state_dict(state["opt"])
        self.step_index = state["step_index"]

    def log_density(self, x):
        with torch.no_grad():
            return self._logp(torch.as_tensor(x, dtype=torch.float64)).numpy()

    def evaluate(self, test, n_samples, seed):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n_samples, self.mu.numel(), generator=g, dtype=torch.float64)
        samples = (self.mu + self.log_sigma.exp() * z).detach().numpy()
        return Evaluation({"nll_nats": float(-self.log_density(test).mean())}, samples)


def make_trainer(cfg, train, seed, device):
    return GaussianFit(cfg, train, seed, device)
'''


@pytest.fixture
def gaussian_fit(tmp_path, monkeypatch):
    (tmp_path / "gaussian_fit.py").write_text(textwrap.dedent(GAUSSIAN_FIT))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(methods.METHODS, "gaussfit", "gaussian_fit")  # undone after the test
    methods.register("gaussfit", "gaussian_fit")  # idempotent for the same module
    return "gaussfit"


def test_a_registered_method_trains_and_evaluates_through_the_cli(gaussian_fit, tmp_path):
    rng = np.random.default_rng(0)
    mean, scale = np.array([1.0, -2.0]), np.array([0.5, 2.0])
    data = tmp_path / "gauss.npz"
    save_npz(data, train=mean + scale * rng.standard_normal((2000, 2)),
             test=mean + scale * rng.standard_normal((500, 2)))
    out = tmp_path / "run"
    common = ["--method", gaussian_fit, "--experiment", "tiny", "--dataset", "gauss",
              "--data", str(data), "--seed", "0", "--device", "cpu"]
    assert main(["train", *common, "--config", json.dumps({"lr": 0.05, "iters": 400}),
                 "--out", str(out / "model.pt"), "--history", str(out / "history.csv"),
                 "--record", str(out / "record.json"), "--no-progress"]) == 0
    assert main(["evaluate", *common, "--checkpoint", str(out / "model.pt"),
                 "--eval-samples", "300", "--out-metrics", str(out / "metrics.json"),
                 "--out-samples", str(out / "samples.npz")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == gaussian_fit and metrics["n_parameters"] == 4
    # the fitted Gaussian's test NLL is close to the true one's entropy: ½ln(2πe)·2 + Σ ln σ
    entropy = np.log(2 * np.pi * np.e) + np.log(scale).sum()
    assert abs(metrics["nll_nats"] - entropy) < 0.1
    assert {"mmd2", "mmd2_half"} <= set(metrics)
    with np.load(out / "samples.npz") as samples:
        assert samples["samples"].shape == (300, 2)


def test_register_refuses_a_name_taken_by_another_module():
    with pytest.raises(ValueError, match="already registered"):
        methods.register("otflow", "somewhere.else")
