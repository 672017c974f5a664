"""Neural spline flow (zuko), the discrete-flow baseline of the cross-method benchmark.

Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019,
arXiv:1906.04032: a stack of autoregressive monotonic rational-quadratic spline transforms
(their §3: the RQ spline with K bins on [−B, B] and identity tails outside),
trained by maximum likelihood with the change of variables

    log p(x) = log N(f(x); 0, I) + log |det ∂f/∂x|,

the exact log-density (no estimator). The flow itself is ``zuko.flows.NSF`` (zuko 1.6.0:
masked-autoregressive RQS transforms whose feature order is reversed between transforms);
nothing here re-implements it. Training: Adam with cosine annealing of the learning rate to 0
over the run and gradient-norm clipping, as in the authors' 2-D experiments
(``experiments/plane.py`` of github.com/bayesiains/nsf: batch 512, lr 5e-4, clip 5).

The Trainer is invertible: ``forward_map`` is zuko's transform f (data → base),
``inverse_map`` its inverse (base → data; how samples are drawn).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import zuko
from torch import Tensor

from otflows.methods.base import (
    DTYPES,
    Evaluation,
    checked_step,
    checked_tensor,
    config_from_dict,
    spec,
)

__all__ = ["NSFConfig", "NSFTrainer", "make_trainer"]

_STATE_FORMAT = "otflows.nsf/1"


@dataclass(frozen=True)
class NSFConfig:
    """One maximum-likelihood NSF run (every key required; defaults in the params schema)."""

    transforms: int = spec(min=1)  # autoregressive RQS transforms (zuko default 3)
    hidden_features: int = spec(min=1)  # width of each conditioner MLP (zuko default 64)
    hidden_layers: int = spec(min=1)  # hidden layers of each conditioner (zuko default 2)
    bins: int = spec(min=2)  # K spline bins (Durkan et al. 2019 and zuko default: 8)
    lr: float = spec(gt=0)  # Adam initial learning rate (authors' 2-D runs: 5e-4)
    grad_clip: float = spec()  # max gradient 2-norm (authors' 2-D runs: 5); 0 = no clipping
    batch_size: int = spec(min=1)  # samples per optimiser step (authors' 2-D runs: 512)
    iters: int = spec(min=1)  # optimiser steps (cosine annealing over all of them)
    dtype: str = spec(choices=tuple(DTYPES))  # "float32" | "float64"

    @classmethod
    def from_dict(cls, d: dict, section: str = "nsf") -> NSFConfig:
        """Build from a plain dict; raise ValueError naming unknown, missing or bad keys."""
        return config_from_dict(cls, d, section)


def build_flow(cfg: NSFConfig, d: int, seed: int) -> zuko.flows.NSF:
    """The zuko NSF on ``d`` features, initialised from ``seed`` (the global torch RNG is
    left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        flow = zuko.flows.NSF(d, transforms=cfg.transforms, bins=cfg.bins,
                              hidden_features=[cfg.hidden_features] * cfg.hidden_layers)
    return flow.to(DTYPES[cfg.dtype])


class NSFTrainer:
    """Adam on the exact NLL of a zuko NSF for ``iters`` steps (Trainer protocol)."""

    eval_batch_size: int = 5000

    def __init__(self, cfg: NSFConfig, train: np.ndarray, seed: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = DTYPES[cfg.dtype]
        self.train = checked_tensor(train, "train", self.dtype, self.device)
        if self.train.shape[0] < 1:
            raise ValueError("train is empty")
        self.d = self.train.shape[1]
        self.flow = build_flow(cfg, self.d, seed).to(self.device)
        # the minibatch sampler's own generator: resumable, independent of the global RNG
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
        self.optimizer, self.scheduler = self._new_optimizer()
        self.n_steps = cfg.iters
        self.step_index = 0

    def _new_optimizer(self) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LRScheduler]:
        opt = torch.optim.Adam(self.flow.parameters(), lr=self.cfg.lr)
        # cosine annealing to 0 over the run (the authors' 2-D and tabular experiments)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.cfg.iters)

    def _next_batch(self) -> Tensor:
        n = self.train.shape[0]
        idx = torch.randperm(n, generator=self.generator)[: self.cfg.batch_size]
        return self.train[idx.to(self.device)]

    def train_step(self) -> dict[str, float]:
        """One Adam step on the mean NLL (nats) of a fresh batch; returns ``loss``, ``lr``."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        x = self._next_batch()
        self.optimizer.zero_grad(set_to_none=True)
        loss = -self.flow().log_prob(x).mean()
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.flow.parameters(), self.cfg.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.step_index += 1
        return {"loss": loss.item(), "lr": float(lr)}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Weights, Adam and schedule state, sampler RNG and step (``weights_only`` loadable)."""
        return copy.deepcopy({
            "format": _STATE_FORMAT,
            "step_index": self.step_index,
            "flow": self.flow.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
        })

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict` of a trainer of the same config."""
        step = checked_step(state, _STATE_FORMAT, "an NSF trainer", self.n_steps)
        self.flow.load_state_dict(state["flow"])
        self.optimizer, self.scheduler = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.step_index = step

    # ------------------------------------------------------------------ the model
    def n_parameters(self) -> int:
        """Trainable parameters of the flow (zuko's masked weights counted in full)."""
        return sum(p.numel() for p in self.flow.parameters() if p.requires_grad)

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter of the flow."""
        return [p for p in self.flow.parameters() if p.requires_grad]

    def _batches(self, x: Tensor) -> Iterator[Tensor]:
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield x[i : i + self.eval_batch_size]

    def _apply(self, x: np.ndarray, name: str, inverse: bool) -> np.ndarray:
        xt = checked_tensor(x, name, self.dtype, self.device, self.d)
        t = self.flow().transform
        f = t.inv if inverse else t
        parts = [f(b).double().cpu() for b in self._batches(xt)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.d))

    @torch.no_grad()
    def forward_map(self, x: np.ndarray) -> np.ndarray:
        """Data ``[n, d]`` → base: z = f(x), zuko's transform; float64."""
        return self._apply(x, "x", inverse=False)

    @torch.no_grad()
    def inverse_map(self, z: np.ndarray) -> np.ndarray:
        """Base ``[n, d]`` → data: x = f⁻¹(z), zuko's inverse transform; float64."""
        return self._apply(z, "z", inverse=True)

    @torch.no_grad()
    def log_density(self, x: np.ndarray) -> np.ndarray:
        """Exact log p(x) = log N(f(x)) + log|det ∂f/∂x| in nats, ``[n]``."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        dist = self.flow()
        parts = [dist.log_prob(b).double().cpu() for b in self._batches(xt)]
        return torch.cat(parts).numpy() if parts else np.zeros(0)

    def _base_draws(self, n: int, seed: int) -> np.ndarray:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return torch.randn(int(n), self.d, generator=gen, dtype=torch.float64).numpy()

    def generate(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples of the learned model (float64 ``[n, d]``), deterministic in
        ``seed``: f⁻¹(z) for z ~ N(0, I)."""
        return self.inverse_map(self._base_draws(n, seed))

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Test NLL (nats, exact), the map's transport cost E‖f⁻¹(z) − z‖² over the sampled
        pairs (base draw z, its image), inversion error of f⁻¹(f(x)), and the samples."""
        if np.asarray(test).shape[0] < 1:
            raise ValueError("evaluate: the test split is empty")
        nll = -self.log_density(test)
        z = self._base_draws(n_samples, seed)
        samples = self.inverse_map(z)
        xs = np.asarray(test, dtype=np.float64)[:1000]
        inversion = np.linalg.norm(self.inverse_map(self.forward_map(xs)) - xs, axis=1)
        metrics = {
            "nll_nats": float(nll.mean()),
            "nll_nats_stderr": float(nll.std(ddof=1) / np.sqrt(len(nll))) if len(nll) > 1
            else 0.0,
            "transport_cost": float(np.square(samples - z).sum(1).mean()) if len(z) else 0.0,
            "inversion_error": float(inversion.mean()),
            "n_parameters": float(self.n_parameters()),
        }
        return Evaluation(metrics=metrics, samples=samples)


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device
                 ) -> NSFTrainer:
    """Maximum-likelihood zuko NSF trainer; ``cfg`` holds every NSFConfig key."""
    return NSFTrainer(NSFConfig.from_dict(cfg), train, seed, device)
