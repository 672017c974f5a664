"""Amortised variational inference with a CP-Flow posterior (CP-Flow §5.4, Table 3's setting;
Huang et al., ICLR 2021, arXiv:2012.05942), on MNIST grey levels.

The VAE is ``otflows.nn.vae.ConvVAE`` (Bernoulli decoder on grey levels). The posterior is
q(z|x): z₀ = μ + σ ⊙ ε, z = ∇_z F_α(z₀; c(x)), with F_α(·; c) = α/2‖z‖² + β·F(·; c) and F a
partially input-convex ICNN (Amos et al. 2017; ``ICNN(context=...)``) conditioned on
c(x) = tanh(linear(encoder features)), so log q(z|x) = log N(z₀; μ, σ²) − log det ∇²F_α(z₀).
Training: −ELBO = E_q[−log p(x|z) − log N(z; 0, I) + log q(z|x)], one sample, with the
Algorithm 2 surrogate for ∇ log det (its probes from their own stream, so both posteriors
see the same batches and ε). Evaluation: exact log det, each test image's −ELBO the mean of
``elbo_samples`` draws. ``posterior: gaussian`` is the baseline VAE (z = z₀) trained by the
same loop and budget. Nats per image.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from otflows.data.mnist import LOGIT_LAMBDA, inverse_logit_transform, logit_transform
from otflows.distributions import standard_normal_log_prob
from otflows.linalg import exact_log_det
from otflows.methods.base import Evaluation, checked_step
from otflows.methods.cpflow.config import VAEFlowConfig
from otflows.methods.cpflow.core import surrogate_log_det
from otflows.nn.icnn import ICNN, ConvexPotential
from otflows.nn.vae import ConvVAE, grey_levels

__all__ = ["AmortisedVAE", "ELBOTerms", "VAEFlowTrainer", "make_vae_trainer"]

_STATE_FORMAT = "otflows.cpflow_vae/1"


@dataclass
class ELBOTerms:
    """Per-image terms (nats) ``[n]``: total = −ELBO = recon + kl, where kl is the one-sample
    estimate log q(z|x) − log N(z; 0, I)."""

    total: Tensor
    recon: Tensor
    kl: Tensor


class AmortisedVAE(nn.Module):
    """ConvVAE + context head + conditional convex potential (posterior flow)."""

    def __init__(self, cfg: VAEFlowConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.vae = ConvVAE(cfg.latent_dim, cfg.width)
        self.head = nn.Linear(2 * cfg.width * 49, cfg.context)
        self.flow = ConvexPotential(ICNN(cfg.latent_dim, cfg.icnn_width, cfg.icnn_depth,
                                         context=cfg.context, generator=generator))
        self.use_flow = cfg.posterior == "cpflow"

    def trained_parameters(self) -> list[nn.Parameter]:
        """The parameters Adam trains: the VAE's, plus the context head's and the
        potential's with the CP-Flow posterior (the Gaussian baseline leaves them unused)."""
        mods = [self.vae] + ([self.head, self.flow] if self.use_flow else [])
        return [p for m in mods for p in m.parameters()]

    def n_parameters(self) -> int:
        """Number of trained parameters."""
        return sum(p.numel() for p in self.trained_parameters())

    def terms(self, x: Tensor, noise: Tensor, generator: torch.Generator | None,
              cg_tol: float, cg_max_iter: int) -> ELBOTerms:
        """−ELBO terms of grey levels x ``[n, 784]``; surrogate log det when ``generator``
        is given (training), exact log det otherwise (evaluation)."""
        feat = self.vae.encoder(x.view(-1, 1, 28, 28))
        mu, logvar = self.vae.to_stats(feat).chunk(2, dim=1)
        z0 = mu + torch.exp(0.5 * logvar) * noise
        log_q0 = -0.5 * (noise.square() + logvar + math.log(2 * math.pi)).sum(1)
        if self.use_flow:
            c = torch.tanh(self.head(feat))
            if generator is not None:
                out = surrogate_log_det(self.flow, z0, generator, cg_tol, cg_max_iter, c)
                z, logdet = out.output, out.surrogate
            else:
                logdet = exact_log_det(self.flow, z0, context=c).detach()
                z = self.flow.derivatives(z0, c)[1]
        else:
            z, logdet = z0, torch.zeros_like(log_q0)
        recon = F.binary_cross_entropy_with_logits(self.vae.decode(z), x,
                                                   reduction="none").sum(1)
        kl = log_q0 - logdet - standard_normal_log_prob(z)
        return ELBOTerms(recon + kl, recon, kl)


class VAEFlowTrainer:
    """Adam on the one-sample −ELBO for ``iters`` steps (the harness's Trainer protocol)."""

    eval_batch_size = 250

    def __init__(self, cfg: VAEFlowConfig, pixels: np.ndarray, seed: int, device: torch.device,
                 test_pixels: np.ndarray | None, logit_lambda: float) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.train = grey_levels(pixels, self.device)
        self.test = grey_levels(test_pixels, self.device) if test_pixels is not None else None
        self.lam = logit_lambda
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        # The Rademacher probes of Alg. 2 have their own stream, so both posteriors draw the
        # same batches and ε from ``generator`` (a paired comparison).
        self.probe_generator = torch.Generator(device="cpu").manual_seed(int(seed) + 3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + 1)
            self.model = AmortisedVAE(cfg, torch.Generator().manual_seed(int(seed) + 2))
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.trained_parameters(), lr=cfg.lr)
        self.n_steps, self.step_index = cfg.iters, 0

    def n_parameters(self) -> int:
        """Number of trained parameters (VAE, plus context head and ICNN for CP-Flow)."""
        return self.model.n_parameters()

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every parameter Adam trains (see :meth:`AmortisedVAE.trained_parameters`)."""
        return self.model.trained_parameters()

    def state_dict(self) -> dict:
        """Weights, Adam state, batch RNG and step (bit-exact resume)."""
        return {"format": _STATE_FORMAT, "model": copy.deepcopy(self.model.state_dict()),
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "generator": self.generator.get_state(),
                "probe_generator": self.probe_generator.get_state(),
                "step_index": self.step_index}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        step = checked_step(state, _STATE_FORMAT, "a CP-Flow trainer", self.n_steps)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.probe_generator.set_state(state["probe_generator"])
        self.step_index = step

    def train_step(self) -> dict[str, float]:
        """One Adam step on the batch mean of the −ELBO (Alg. 2 surrogate for log det)."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        idx = torch.randint(0, self.train.shape[0], (self.cfg.batch_size,),
                            generator=self.generator)
        x = self.train[idx.to(self.device)]
        noise = torch.randn(x.shape[0], self.cfg.latent_dim, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        t = self.model.terms(x, noise.to(self.device), self.probe_generator, self.cfg.cg_tol,
                             self.cfg.cg_max_iter)
        loss = t.total.mean()
        loss.backward()
        self.optimizer.step()
        self.step_index += 1
        return {"loss": loss.item(), "recon": t.recon.mean().item(), "kl": t.kl.mean().item()}

    def elbo_terms(self, x: Tensor, seed: int, samples: int = 1) -> ELBOTerms:
        """Per-image −ELBO terms of grey levels ``x``, each the mean of ``samples``
        reparameterised draws z₀ = μ + σ ⊙ ε (exact log det)."""
        gen = torch.Generator().manual_seed(int(seed))
        parts = []
        for i in range(0, x.shape[0], self.eval_batch_size):
            b = x[i:i + self.eval_batch_size]
            draws = []
            for _ in range(int(samples)):
                noise = torch.randn(b.shape[0], self.cfg.latent_dim, generator=gen)
                t = self.model.terms(b, noise.to(self.device), None, 0.0, 0)
                draws.append(torch.stack([t.total.detach(), t.recon.detach(),
                                          t.kl.detach()]).double())
            parts.append(torch.stack(draws).mean(0))
        return ELBOTerms(*torch.cat(parts, dim=1).unbind(0))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """The ELBO (a lower bound on log p, nats) of logit-space MNIST rows ``[n, 784]``
        read as grey levels."""
        grey = inverse_logit_transform(np.asarray(x, dtype=np.float64), self.lam)
        xt = torch.as_tensor(np.clip(grey, 0.0, 1.0), dtype=torch.float32, device=self.device)
        return -self.elbo_terms(xt, 0, self.cfg.elbo_samples).total.cpu().numpy()

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """−ELBO (nats per image, exact log det, each image's the mean of ``elbo_samples``
        draws) on the first ``n_samples`` test images (per image in the extras, for the paired
        comparison of the two posteriors), and
        decoded samples z ~ N(0, I) (Bernoulli means, returned in logit space)."""
        if self.test is None:
            raise ValueError("evaluate: the MNIST file has no test_pixels")
        x = self.test[: max(2, int(n_samples))]
        t = self.elbo_terms(x, seed, self.cfg.elbo_samples)
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(64, self.cfg.latent_dim, generator=gen).to(self.device)
        with torch.no_grad():
            means = torch.sigmoid(self.model.vae.decode(z)).double().cpu().numpy()
        n = t.total.shape[0]
        metrics = {"neg_elbo_nats": t.total.mean().item(),
                   "neg_elbo_nats_stderr": (t.total.std() / math.sqrt(n)).item(),
                   "recon_nats": t.recon.mean().item(), "kl_nats": t.kl.mean().item(),
                   "n_parameters": float(self.n_parameters()), "n_test_images": float(n)}
        samples = logit_transform(np.clip(means, 1e-6, 1 - 1e-6), self.lam)
        return Evaluation(metrics=metrics, samples=samples,
                          extras={"sample_pixels": means[:16],
                                  "neg_elbo_per_image": t.total.cpu().numpy()})


def make_vae_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device,
                     arrays: dict[str, np.ndarray] | None = None) -> VAEFlowTrainer:
    """Amortised VI on the prepared MNIST file: ``arrays`` must hold ``train_pixels`` (and
    ``test_pixels`` for evaluation); ``train`` (logit space) is not used."""
    arrays = dict(arrays or {})
    if "train_pixels" not in arrays:
        raise ValueError("CP-Flow VAE: the data file has no `train_pixels`; use the prepared "
                         "MNIST file (snakemake data/processed/mnist5k.npz)")
    lam = float(arrays.get("logit_lambda", LOGIT_LAMBDA))
    return VAEFlowTrainer(VAEFlowConfig.from_dict(cfg), arrays["train_pixels"], seed, device,
                          arrays.get("test_pixels"), lam)
