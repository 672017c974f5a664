"""The parts both Monge-Ampère trainers share: potential, Adam, generator, state dict.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188. The density
task (eq. 6, ``density.py``) and the Ising task (eq. 7, ``ising.py``) train the same
potential ϕ (``potential.py``) with Adam from one seeded CPU generator; this module holds
that common state and its (de)serialisation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor

from otflows.methods.base import DTYPES, checked_step
from otflows.methods.mongeampere.potential import SoftplusPotential

__all__ = ["STATE_FORMAT", "PotentialConfig", "PotentialTrainer"]

STATE_FORMAT = "otflows.mongeampere/2"
"""The ``format`` tag of a Monge-Ampère trainer state, checked on load (/2: the optimiser
state is ``torch.optim.Adam``'s)."""


class PotentialConfig(Protocol):
    """The config keys :class:`PotentialTrainer` reads (both task configs have them)."""

    @property
    def task(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def dtype(self) -> str: ...


class PotentialTrainer:
    """Shared parts of both trainers: the potential, Adam, one CPU generator, the state dict.

    Subclasses set ``n_steps`` and ``d`` and may extend the state via ``_extra_state``.
    """

    n_steps: int
    d: int
    eval_batch_size = 1000

    def __init__(self, cfg: PotentialConfig, d: int, seed: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = DTYPES[cfg.dtype]
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        self.potential = SoftplusPotential(d, cfg.width, self.dtype, self.generator)
        self.potential.to(self.device)
        self.optimizer = self._new_optimizer()
        self.step_index = 0

    def _new_optimizer(self) -> torch.optim.Adam:
        return torch.optim.Adam(self.potential.parameters(), lr=self.cfg.lr,
                                weight_decay=self.cfg.weight_decay)

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        """Weights, Adam state, RNG state, step and curves; loads with weights_only=True."""
        return copy.deepcopy({
            "format": STATE_FORMAT, "task": self.cfg.task, "step_index": self.step_index,
            "potential": self.potential.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), **self._extra_state()})

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from :meth:`state_dict` of a trainer with the same config."""
        step = checked_step(state, STATE_FORMAT, f"a Monge-Ampère {self.cfg.task}",
                            self.n_steps, task=self.cfg.task)
        self.potential.load_state_dict(state["potential"])
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_index = step
        self._load_extra_state(state)

    def n_parameters(self) -> int:
        """Trainable parameters of ϕ: h·d + 2h."""
        return sum(p.numel() for p in self.potential.parameters())

    def parameters(self) -> list[torch.nn.Parameter]:
        """W₁, b₁, w₂ of ϕ: every trainable parameter."""
        return list(self.potential.parameters())

    def _batches(self, x: Tensor) -> Iterator[Tensor]:
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield x[i : i + self.eval_batch_size]
