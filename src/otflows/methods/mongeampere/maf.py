"""The MAF baseline of the Monge-Ampère Table 1 at default scale (a zuko flow, not hand-written).

Zhang, E, Wang, arXiv:1809.10188, Table 1 compares the Monge-Ampère flow with MAF
(Papamakarios et al. 2017, arXiv:1705.07057) on MNIST in logit space. At default scale the
published numbers (full MNIST, width 1024) do not apply, so this trainer fits a
``zuko.flows.MAF`` with a parameter count matched to the default Monge-Ampère run (±20 %),
on the same split, by maximum likelihood with Adam, scoring the same NLL (nats, logit space).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from zuko import flows

from otflows.data.mnist import bits_per_dim_from_logit_nll, inverse_logit_transform
from otflows.methods.base import (
    DTYPES,
    Evaluation,
    checked_step,
    checked_tensor,
    config_from_dict,
    spec,
)

__all__ = ["MAFConfig", "MAFTrainer", "STATE_FORMAT"]

STATE_FORMAT = "otflows.mongeampere-maf/1"
"""The ``format`` tag of a MAF baseline state, checked on load."""


@dataclass(frozen=True)
class MAFConfig:
    """A zuko MAF fitted by maximum likelihood (the Table 1 baseline at default scale)."""

    task: str = spec(choices=("maf",))  # "maf"
    transforms: int = spec(min=1)  # masked autoregressive transforms
    hidden: int = spec(min=1)  # units of each hidden layer of each MADE
    hidden_layers: int = spec(min=1)  # hidden layers per MADE
    lr: float = spec(gt=0)  # Adam learning rate
    weight_decay: float = spec()  # Adam weight decay
    batch_size: int = spec(min=1)  # B
    epochs: int = spec(min=1)  # passes over the training set
    monitor: int = spec()  # test examples scored after every epoch; 0 = none
    dtype: str = spec(choices=tuple(DTYPES))  # "float32" | "float64"

    @classmethod
    def from_dict(cls, d: dict) -> MAFConfig:
        """Validate and build; raise ValueError naming the offending key."""
        return config_from_dict(cls, d, "mongeampere (maf task)")


class MAFTrainer:
    """Maximum likelihood of a zuko MAF on ``train`` ``[n, d]``; one shuffled pass per epoch.

    With ``logit_lambda`` the data are images in logit space (as for the Monge-Ampère run):
    the NLL stays in logit space and bits/dim in pixel space is added.
    """

    eval_batch_size = 1000

    def __init__(self, cfg: MAFConfig, train: np.ndarray, seed: int, device: torch.device,
                 test: np.ndarray | None = None, logit_lambda: float | None = None) -> None:
        arr = np.asarray(train)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"train has shape {arr.shape}; expected [n, d] with n >= 1")
        self.cfg, self.device, self.dtype = cfg, torch.device(device), DTYPES[cfg.dtype]
        self.train = checked_tensor(arr, "train", self.dtype, self.device)
        self.d = arr.shape[1]
        self.logit_lambda = logit_lambda
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):  # zuko initialises from the global RNG
            torch.manual_seed(int(seed))
            self.flow = flows.MAF(self.d, transforms=cfg.transforms,
                                  hidden_features=[cfg.hidden] * cfg.hidden_layers)
        self.flow.to(self.device, self.dtype)
        self.optimizer = self._new_optimizer()
        self.monitor_set = (None if test is None or cfg.monitor == 0 else checked_tensor(
            np.asarray(test)[: cfg.monitor], "test", self.dtype, self.device, self.d))
        self.steps_per_epoch = -(-arr.shape[0] // cfg.batch_size)
        self.n_steps = cfg.epochs * self.steps_per_epoch
        self.step_index = 0
        self.perm = torch.zeros(0, dtype=torch.int64)
        self.epoch_sum, self.epoch_count = 0.0, 0
        self.curve: list[list[float]] = []  # [epoch, train NLL, test NLL (nan: none)]

    def _new_optimizer(self) -> torch.optim.Adam:
        return torch.optim.Adam(self.flow.parameters(), lr=self.cfg.lr,
                                weight_decay=self.cfg.weight_decay)

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        return -self.flow().log_prob(x)

    def train_step(self) -> dict[str, float]:
        """One Adam step on the batch mean of −ln p(x); returns python floats."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        k = self.step_index % self.steps_per_epoch
        if k == 0:
            self.perm = torch.randperm(self.train.shape[0], generator=self.generator)
        idx = self.perm[k * self.cfg.batch_size : (k + 1) * self.cfg.batch_size]
        x = self.train[idx.to(self.device)]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._nll(x).mean()
        loss.backward()
        self.optimizer.step()
        self.step_index += 1
        value = loss.item()
        self.epoch_sum += value * x.shape[0]
        self.epoch_count += x.shape[0]
        logs = {"loss": value}
        if k == self.steps_per_epoch - 1:
            epoch = self.step_index // self.steps_per_epoch
            train_nll = self.epoch_sum / self.epoch_count
            test_nll = (self._mean_nll(self.monitor_set) if self.monitor_set is not None
                        else math.nan)
            self.curve.append([float(epoch), train_nll, test_nll])
            self.epoch_sum, self.epoch_count = 0.0, 0
            logs.update(epoch=float(epoch), train_nll_epoch=train_nll)
            if math.isfinite(test_nll):
                logs["test_nll_epoch"] = test_nll
        return logs

    @torch.no_grad()
    def _all_nll(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._nll(x[i : i + self.eval_batch_size]).double()
                          for i in range(0, x.shape[0], self.eval_batch_size)])

    def _mean_nll(self, x: torch.Tensor) -> float:
        return self._all_nll(x).mean().item()

    def state_dict(self) -> dict:
        """Weights, Adam state, RNG state, step and curve; loads with weights_only=True."""
        return copy.deepcopy({
            "format": STATE_FORMAT, "task": "maf", "step_index": self.step_index,
            "flow": self.flow.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), "perm": self.perm,
            "epoch_sum": self.epoch_sum, "epoch_count": self.epoch_count,
            "curve": self.curve})

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from :meth:`state_dict` of a trainer with the same config."""
        step = checked_step(state, STATE_FORMAT, "a Monge-Ampère MAF baseline", self.n_steps,
                            task="maf")
        self.flow.load_state_dict(state["flow"])
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_index = step
        self.perm = state["perm"]
        self.epoch_sum, self.epoch_count = float(state["epoch_sum"]), int(state["epoch_count"])
        self.curve = [list(map(float, row)) for row in state["curve"]]

    def n_parameters(self) -> int:
        """Trainable parameters of the MAF."""
        return sum(p.numel() for p in self.flow.parameters() if p.requires_grad)

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter of the MAF."""
        return [p for p in self.flow.parameters() if p.requires_grad]

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """ln p(x) in nats ``[n]`` for x ``[n, d]``."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        return (-self._all_nll(xt)).cpu().numpy()

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> np.ndarray:
        """n samples (seeded), float64 ``[n, d]``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self.flow().sample((int(n),)).double().cpu().numpy()

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Test NLL (nats, mean and standard error), bits/dim for images, and samples."""
        x = checked_tensor(test, "test", self.dtype, self.device, self.d)
        if x.shape[0] < 1:
            raise ValueError("evaluate: the test split is empty")
        nll = self._all_nll(x)
        metrics = {"nll_nats": nll.mean().item(),
                   "nll_nats_stderr": (nll.std() / math.sqrt(len(nll))).item()
                   if len(nll) > 1 else 0.0,
                   "n_parameters": float(self.n_parameters())}
        if self.logit_lambda is not None:
            lam = self.logit_lambda
            pixels = inverse_logit_transform(np.asarray(test, dtype=np.float64), lam)
            metrics.update(bpd=float(bits_per_dim_from_logit_nll(nll.cpu().numpy(), pixels,
                                                                 lam).mean()),
                           logit_lambda=float(lam))
        extras = {"epoch_curve": np.asarray(self.curve, dtype=np.float64)} if self.curve else {}
        return Evaluation(metrics=metrics, samples=self.sample(n_samples, seed), extras=extras)
