"""Training of the MNIST VAE (``otflows.nn.vae.ConvVAE``) whose latent means are the data of
Q-flow's latent-space translation (Xu, Cheng, Xie) and the model of CP-Flow's amortised VI.

The targets are the grey levels pixel/255 (Bernoulli cross-entropy on grey levels, the usual
MNIST VAE). ``VAETrainer`` fulfils the Trainer contract (``methods/base.py``), so training
gets checkpoints, resume and the NaN stop of the harness for free. It trains on the data
file's ``train_pixels`` (the prepared MNIST file) and prepares data for the other methods.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from otflows.methods.base import Evaluation, config_from_dict, spec
from otflows.nn.vae import ELBO, ConvVAE, grey_levels, negative_elbo

__all__ = ["VAEConfig", "VAETrainer", "make_trainer"]

_STATE_FORMAT = "otflows.vae/1"


@dataclass(frozen=True)
class VAEConfig:
    """Settings of one VAE run (the ``vae`` section; every key required)."""

    latent_dim: int = spec(min=1)  # dimension of z
    width: int = spec(min=1)  # channels of the first convolution (the second has 2·width)
    lr: float = spec(gt=0)  # Adam learning rate
    batch_size: int = spec(min=1)  # images per step
    iters: int = spec(min=1)  # Adam steps

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """Build from a plain dict; raise ValueError naming unknown, missing or bad keys."""
        return config_from_dict(cls, d, "vae")


class VAETrainer:
    """Adam on the negative ELBO for ``iters`` steps (the harness's Trainer protocol)."""

    eval_batch_size: int = 1000

    def __init__(self, cfg: VAEConfig, train: np.ndarray, seed: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.train = grey_levels(train, self.device)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.model = ConvVAE(cfg.latent_dim, cfg.width).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.n_steps = cfg.iters
        self.step_index = 0

    def train_step(self) -> dict[str, float]:
        """One Adam step on a random batch; returns loss (−ELBO), recon and kl in nats."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        n = self.train.shape[0]
        idx = torch.randperm(n, generator=self.generator)[: self.cfg.batch_size]
        x = self.train[idx.to(self.device)]
        noise = torch.randn(x.shape[0], self.cfg.latent_dim, generator=self.generator)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        elbo = negative_elbo(self.model, x, noise.to(self.device))
        loss = elbo.total.mean()
        loss.backward()
        self.optimizer.step()
        self.step_index += 1
        return {"loss": loss.item(), "recon": elbo.recon.mean().item(),
                "kl": elbo.kl.mean().item()}

    def state_dict(self) -> dict:
        """Weights, Adam state, RNG state and step (loads with ``weights_only=True``)."""
        return copy.deepcopy({"format": _STATE_FORMAT, "step_index": self.step_index,
                              "model": self.model.state_dict(),
                              "optimizer": self.optimizer.state_dict(),
                              "generator": self.generator.get_state()})

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict` of a trainer of the same config."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError(f"not a VAE trainer state (expected format {_STATE_FORMAT!r})")
        step = int(state["step_index"])
        if not 0 <= step <= self.n_steps:
            raise ValueError(f"state step_index={step} outside [0, {self.n_steps}]: the "
                             f"checkpoint belongs to a different config")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_index = step

    def n_parameters(self) -> int:
        """Trainable parameters of encoder and decoder."""
        return sum(p.numel() for p in self.model.parameters())

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter of the VAE (encoder and decoder)."""
        return list(self.model.parameters())

    def _batches(self, x: Tensor):
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield x[i : i + self.eval_batch_size]

    @torch.no_grad()
    def encode_means(self, pixels: np.ndarray) -> np.ndarray:
        """Latent means μ(x) of ``pixels`` ``[n, 784]`` → float64 ``[n, latent]``."""
        self.model.eval()
        x = grey_levels(pixels, self.device)
        return torch.cat([self.model.encode(b)[0] for b in self._batches(x)]
                         ).double().cpu().numpy()

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Pixel probabilities ``[n, 784]`` (float64 in [0, 1]) of latents ``z``."""
        self.model.eval()
        zt = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=self.device)
        return torch.sigmoid(self.model.decode(zt)).double().cpu().numpy()

    @torch.no_grad()
    def _elbo(self, pixels: np.ndarray, seed: int) -> ELBO:
        self.model.eval()
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        parts = []
        for b in self._batches(grey_levels(pixels, self.device)):
            noise = torch.randn(b.shape[0], self.cfg.latent_dim, generator=gen)
            parts.append(negative_elbo(self.model, b, noise.to(self.device)))
        return ELBO(*(torch.cat([getattr(p, k) for p in parts]).double().cpu()
                      for k in ("total", "recon", "kl")))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """The ELBO (a lower bound on log p(x), nats) of pixels ``x`` ``[n, 784]``, ``[n]``."""
        return -self._elbo(x, 0).total.numpy()

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Test −ELBO (nats/image); decoded samples z ~ N(0, I) ``[n_samples, 784]``;
        extras: ``originals`` and ``reconstructions`` (decoded μ) of 32 images spread
        evenly over ``test``."""
        elbo = self._elbo(test, seed)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed) + 1)
        z = torch.randn(int(n_samples), self.cfg.latent_dim, generator=gen).numpy()
        test = np.asarray(test)
        shown = test[np.unique(np.linspace(0, len(test) - 1, 32).astype(int))]
        metrics = {"neg_elbo_nats": elbo.total.mean().item(),
                   "recon_nats": elbo.recon.mean().item(),
                   "kl_nats": elbo.kl.mean().item(),
                   "n_parameters": float(self.n_parameters())}
        return Evaluation(metrics=metrics, samples=self.decode(z),
                          extras={"originals": shown.astype(np.float64) / 255.0,
                                  "reconstructions": self.decode(self.encode_means(shown))})

def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None) -> VAETrainer:
    """VAE trainer for ``cfg`` (every VAEConfig key) on pixels ``[n, 784]`` in 0..255: the
    data file's ``train_pixels`` when ``arrays`` holds it, else ``train``."""
    pixels = arrays["train_pixels"] if arrays and "train_pixels" in arrays else train
    return VAETrainer(VAEConfig.from_dict(cfg), pixels, seed, device)
